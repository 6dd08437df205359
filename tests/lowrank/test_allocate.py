"""Rank allocation at a global budget against brute force over every rank combination."""

from __future__ import annotations

import itertools

import pytest
import torch

from rdcompress.errors import ConfigError
from rdcompress.lowrank import (
    DENSE,
    allocate_ranks,
    distortion_curve,
    layer_cost,
    max_useful_rank,
    truncated_svd,
    uniform_ranks,
)


def _problem(shapes, seed=0, decay=None):
    """SVD curves of random matrices of ``shapes`` (optionally with decaying spectra)."""
    gen = torch.Generator().manual_seed(seed)
    curves = {}
    for i, (out, d) in enumerate(shapes):
        W = torch.randn(out, d, generator=gen, dtype=torch.float64)
        if decay is not None:
            u, s, vh = torch.linalg.svd(W, full_matrices=False)
            W = (u * torch.tensor([decay ** k for k in range(len(s))], dtype=torch.float64)
                 * (i + 1)) @ vh
        A, B = truncated_svd(W, max_useful_rank(out, d))
        curves[f"l{i}"] = distortion_curve(W, torch.ones_like(W), A, B)
    return curves, {f"l{i}": s for i, s in enumerate(shapes)}


def _brute_force(curves, shapes, budget):
    names = list(shapes)
    choices = [[*range(1, max_useful_rank(*shapes[n]) + 1), DENSE] for n in names]
    best = None
    for combo in itertools.product(*choices):
        cost = sum(layer_cost(shapes[n], r) for n, r in zip(names, combo, strict=True))
        if cost > budget:
            continue
        value = sum(0.0 if r is DENSE else float(curves[n][r])
                    for n, r in zip(names, combo, strict=True))
        if best is None or value < best:
            best = value
    return best


def _value(curves, ranks):
    return sum(0.0 if r is DENSE else float(curves[n][r]) for n, r in ranks.items())


def _cost(shapes, ranks):
    return sum(layer_cost(shapes[n], r) for n, r in ranks.items())


def test_distortion_curve_matches_direct_computation():
    W = torch.randn(6, 5, dtype=torch.float64)
    I = torch.rand(6, 5, dtype=torch.float64)
    A, B = truncated_svd(W, 4)
    curve = distortion_curve(W, I, A, B)
    for r in range(5):
        direct = float((I * (W - A[:, :r] @ B[:r]) ** 2).sum())
        assert float(curve[r]) == pytest.approx(direct, rel=1e-10, abs=1e-12)


def test_equal_costs_and_convex_curves_give_the_exact_optimum():
    # same shapes: every step (dense included: 64 − 3·16) costs 16 numbers; a spectrum
    # decaying by 1/2 keeps the tail after rank 3 below s_3², so all points are on the hull
    curves, shapes = _problem([(8, 8)] * 3, seed=1, decay=0.5)
    for budget in range(3 * 16, 3 * 64 + 1, 8):
        ranks = allocate_ranks(curves, shapes, budget)
        assert _cost(shapes, ranks) <= budget
        assert _value(curves, ranks) == pytest.approx(_brute_force(curves, shapes, budget),
                                                      rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_is_within_one_step_of_brute_force(seed):
    shapes_list = [(6, 4), (8, 5), (3, 9)]
    curves, shapes = _problem(shapes_list, seed=seed, decay=0.6)
    largest_step = max(out * d for out, d in shapes_list)  # no hull step is dearer
    total = sum(out * d for out, d in shapes_list)
    for budget in range(sum(o + d for o, d in shapes_list), total + 1, 3):
        ranks = allocate_ranks(curves, shapes, budget)
        assert _cost(shapes, ranks) <= budget
        value = _value(curves, ranks)
        assert value >= _brute_force(curves, shapes, budget) - 1e-12  # the optimum is optimal
        lower_budget = budget - largest_step
        if lower_budget >= sum(o + d for o, d in shapes_list):
            assert value <= _brute_force(curves, shapes, lower_budget) + 1e-12


def test_full_budget_keeps_every_layer_dense():
    curves, shapes = _problem([(6, 4), (5, 5)])
    ranks = allocate_ranks(curves, shapes, budget=6 * 4 + 5 * 5)
    assert ranks == {"l0": DENSE, "l1": DENSE}


def test_budget_below_rank_one_everywhere_is_a_config_error():
    curves, shapes = _problem([(6, 4), (5, 5)])
    with pytest.raises(ConfigError, match="rank 1"):
        allocate_ranks(curves, shapes, budget=5)


def test_uniform_ranks_never_exceed_the_dense_cost():
    shapes = {"a": (256, 784), "b": (10, 256), "c": (1, 5)}
    for ratio in (0.05, 0.3, 0.9, 1.0):
        ranks = uniform_ranks(shapes, ratio)
        for name, rank in ranks.items():
            out, d = shapes[name]
            if rank is not DENSE:
                assert rank * (out + d) < out * d
                assert rank == max(1, int(ratio * out * d / (out + d)))
    assert uniform_ranks(shapes, 1.0) == {"a": DENSE, "b": DENSE, "c": DENSE}
    assert uniform_ranks(shapes, 0.1)["a"] == 19  # 0.1·256·784/1040 = 19.3
