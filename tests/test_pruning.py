"""Pruning masks: exact kept counts, greedy optimality (brute force), ties, scopes, structure."""

from __future__ import annotations

import itertools

import pytest
import torch

from rdcompress.errors import ConfigError, NonFiniteError
from rdcompress.pruning import (
    global_masks,
    kept_count,
    prune_scores,
    structured_global_masks,
    structured_mask,
    unstructured_mask,
)


def test_scores_formula():
    w = torch.tensor([1.0, -2.0, 0.5])
    I = torch.tensor([2.0, 1.0, 4.0])
    H = torch.tensor([0.0, 0.25, 1.0])
    expected = torch.tensor([2.0, 4.0 + 0.25 * 16, 1.0 + 0.0625], dtype=torch.float64)
    torch.testing.assert_close(prune_scores(w, I, H), expected)
    torch.testing.assert_close(prune_scores(w), (w.double() ** 2))


@pytest.mark.parametrize(("n", "fraction", "expected"), [
    (10, 0.25, 3), (10, 0.24, 2), (10, 1.0, 10), (10, 0.01, 1), (7, 0.5, 4), (1000, 0.1, 100),
])
def test_kept_counts_round_half_up(n, fraction, expected):
    assert kept_count(n, fraction) == expected
    assert int(unstructured_mask(torch.rand(n), fraction).sum()) == expected


def test_greedy_mask_is_optimal_by_brute_force():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        scores = torch.rand(8, generator=gen).double()
        fraction = float(torch.randint(1, 9, (1,), generator=gen)) / 8
        mask = unstructured_mask(scores, fraction)
        count = kept_count(8, fraction)
        best = min(
            float(scores.sum() - scores[list(kept)].sum())
            for kept in itertools.combinations(range(8), count)
        )
        assert float(scores[~mask].sum()) == pytest.approx(best)


def test_ties_keep_lower_index():
    mask = unstructured_mask(torch.ones(2, 3), 0.5)
    assert mask.tolist() == [[True, True, True], [False, False, False]]
    masks = global_masks({"a": torch.ones(2), "b": torch.ones(2)}, 0.5)
    assert masks["a"].all() and not masks["b"].any()


def test_global_versus_per_layer():
    scores = {"small": torch.full((100,), 0.1), "large": torch.arange(1.0, 101.0)}
    masks = global_masks(scores, 0.5)
    assert sum(int(m.sum()) for m in masks.values()) == 100
    assert int(masks["large"].sum()) == 100 and int(masks["small"].sum()) == 0
    per_layer = {n: unstructured_mask(s, 0.5) for n, s in scores.items()}
    assert all(int(m.sum()) == 50 for m in per_layer.values())
    assert masks["large"].shape == (100,)


def test_structured_rows_and_columns():
    scores = torch.tensor([[1.0, 1.0, 1.0], [5.0, 0.0, 0.0], [0.0, 0.0, 4.0], [9.0, 9.0, 9.0]])
    rows = structured_mask(scores, 0.5, dim=0)  # row sums 3, 5, 4, 27 -> keep rows 3 and 1
    assert rows.shape == scores.shape
    assert rows.all(dim=1).tolist() == [False, True, False, True]
    assert (rows.any(dim=1) == rows.all(dim=1)).all()  # whole rows only
    cols = structured_mask(scores, 0.34, dim=1)  # column sums 15, 10, 14 -> keep column 0
    assert cols.all(dim=0).tolist() == [True, False, False]
    conv = structured_mask(torch.rand(6, 3, 3, 3), 0.5)
    assert conv.shape == (6, 3, 3, 3) and int(conv.all(dim=(1, 2, 3)).sum()) == 3


def _brute_structured_global(row_scores, kept_weights):
    """Best kept score over all row subsets with >= 1 row per layer and <= kept_weights.

    row_scores: per layer, a list of (row score, row length). Exhaustive: 2**rows subsets.
    """
    rows = [(layer, s, n) for layer, scores in enumerate(row_scores) for s, n in scores]
    best = -1.0
    for pick in itertools.product((False, True), repeat=len(rows)):
        layers = {rows[i][0] for i in range(len(rows)) if pick[i]}
        weights = sum(rows[i][2] for i in range(len(rows)) if pick[i])
        if len(layers) == len(row_scores) and weights <= kept_weights:
            best = max(best, sum(rows[i][1] for i in range(len(rows)) if pick[i]))
    return best


def test_structured_global_by_hand():
    # Rows of "a" have 2 weights, of "b" 4. Row sums a: 6, 1, 5; b: 8, 20.
    # Densities: a 3, 0.5, 2.5; b 2, 5. The guard keeps a0 and b1 (6 weights).
    # 14 weights, f = 0.5 -> target 7: next by density is a2 (2.5 > 2) -> 8 >= 7: stop.
    # Ranking by raw sums would have added b0 (8 > 5) instead, keeping 10 weights for less.
    scores = {
        "a": torch.tensor([[2.0, 4.0], [0.5, 0.5], [3.0, 2.0]]),
        "b": torch.tensor([[2.0, 2.0, 2.0, 2.0], [5.0, 5.0, 5.0, 5.0]]),
    }
    masks = structured_global_masks(scores, 0.5)
    assert masks["a"].all(dim=1).tolist() == [True, False, True]
    assert masks["b"].all(dim=1).tolist() == [False, True]
    assert all((m.any(dim=1) == m.all(dim=1)).all() for m in masks.values())  # whole rows
    assert sum(int(m.sum()) for m in masks.values()) == 8


def test_structured_global_guard_keeps_a_row_per_layer():
    scores = {"weak": torch.full((3, 5), 1e-6), "strong": torch.rand(4, 5) + 1.0}
    masks = structured_global_masks(scores, 0.01)  # target 1 weight: only the guard's rows
    assert int(masks["weak"].all(dim=1).sum()) == 1 and int(masks["strong"].all(dim=1).sum()) == 1
    assert masks["weak"][0].all()  # ties: the lower row index
    full = structured_global_masks(scores, 1.0)
    assert all(bool(m.all()) for m in full.values())


def test_structured_global_is_optimal_by_brute_force():
    gen = torch.Generator().manual_seed(3)
    for trial in range(25):
        shapes = [(int(torch.randint(1, 4, (1,), generator=gen)),
                   int(torch.randint(1, 5, (1,), generator=gen))) for _ in range(3)]
        scores = {f"l{i}": torch.rand(shape, generator=gen).double() ** 3
                  for i, shape in enumerate(shapes)}
        fraction = float(torch.rand(1, generator=gen)) * 0.9 + 0.05
        masks = structured_global_masks(scores, fraction)
        kept_weights = sum(int(m.sum()) for m in masks.values())
        total = sum(s.numel() for s in scores.values())
        row_len = {name: s.shape[1] for name, s in scores.items()}
        # Reaches the target, overshooting by less than one row beyond the guard's rows.
        target = kept_count(total, fraction)
        guard = sum(row_len.values())
        assert kept_weights >= min(target, total)
        assert kept_weights < max(target + max(row_len.values()), guard + 1)
        kept_score = sum(float(s[masks[n]].sum()) for n, s in scores.items())
        rows = [[(float(r.sum()), r.numel()) for r in s] for s in scores.values()]
        assert kept_score == pytest.approx(_brute_structured_global(rows, kept_weights),
                                           rel=1e-12), trial


def test_structured_global_columns_and_conv():
    scores = {"conv": torch.rand(6, 3, 3, 3), "fc": torch.rand(10, 24)}
    masks = structured_global_masks(scores, 0.4)
    conv_rows = masks["conv"].reshape(6, -1)
    assert (conv_rows.any(dim=1) == conv_rows.all(dim=1)).all()
    cols = structured_global_masks({"a": torch.rand(4, 3), "b": torch.rand(2, 5)}, 0.5, dim=1)
    assert (cols["a"].any(dim=0) == cols["a"].all(dim=0)).all()
    assert cols["a"].shape == (4, 3) and cols["b"].shape == (2, 5)
    with pytest.raises(ConfigError, match="dim"):
        structured_global_masks({"bias": torch.rand(3)}, 0.5, dim=1)


def test_errors():
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ConfigError, match="outside"):
            unstructured_mask(torch.rand(4), bad)
    with pytest.raises(NonFiniteError):
        unstructured_mask(torch.tensor([1.0, float("nan")]), 0.5)
    with pytest.raises(ConfigError, match="dim"):
        structured_mask(torch.rand(3, 3), 0.5, dim=2)
    with pytest.raises(ConfigError, match="empty"):
        global_masks({}, 0.5)
    with pytest.raises(ConfigError, match="empty"):
        structured_global_masks({}, 0.5)
    with pytest.raises(ConfigError, match="outside"):
        structured_global_masks({"a": torch.rand(2, 2)}, 0.0)
