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
