"""Theorem 4 / Corollaries 1–2 exhaustively, and where they break."""

from __future__ import annotations

import numpy as np
import pytest

from rdcompress.errors import ConfigError
from rdcompress.theory.golden_rules import (
    compare_argmins,
    pruning_class,
    quantization_class,
    rank_agreement,
    scaled_counterexample,
    score_class,
)


def _instance(seed, m):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(m), np.diag(rng.uniform(0.2, 3.0, m))


@pytest.mark.parametrize("seed", range(4))
def test_pruning_objective_argmin_is_mse_argmin_at_every_kept_count(seed):
    w, sigma_x = _instance(seed, 10)                       # 1024 masks
    scores = pruning_class(w, sigma_x)
    assert np.abs(scores.residual).max() == 0.0            # golden rule 1 holds for all masks
    comparisons = compare_argmins(scores)
    assert len(comparisons) == 11 and all(c.agree for c in comparisons)
    assert rank_agreement(scores)                          # the whole ranking, not only argmin


@pytest.mark.parametrize("seed, k, m", [(0, 2, 8), (1, 3, 7), (2, 3, 7)])
def test_quantization_with_optimal_centroids(seed, k, m):
    w, sigma_x = _instance(seed, m)
    scores = quantization_class(w, sigma_x, k)
    assert np.abs(scores.residual).max() < 1e-12
    assert all(c.agree for c in compare_argmins(scores))
    assert rank_agreement(scores)
    # Brute-force check of one member's centroids: weighted means under I = Σ_X/2.
    row = len(scores.w_hat) // 3
    w_hat = scores.w_hat[row]
    for value in np.unique(w_hat.round(12)):
        members = np.isclose(w_hat, value)
        weights = np.diag(sigma_x)[members]
        assert value == pytest.approx((weights * w[members]).sum() / weights.sum())


def test_scaling_a_golden_rule_solution_lowers_the_mse():
    # {s ŵ}: objective minimized at s = 1 (rule 1 holds), MSE at s* > 1 — still k centroids,
    # so Corollary 2 over ALL centroids (not only optimal ones) does not hold.
    w, sigma_x = _instance(5, 8)
    scores = pruning_class(w, sigma_x)
    two_kept = np.flatnonzero(scores.group == 2)
    best = scores.w_hat[two_kept[np.argmin(scores.objective[two_kept])]]
    rows = scaled_counterexample(w, best, sigma_x)
    assert rows["objective_argmin"]["residual"] == 0.0
    assert rows["mse_argmin"]["scale"] > 1.0
    assert rows["mse_argmin"]["mse"] < rows["objective_argmin"]["mse"] * 0.999
    assert rows["mse_argmin"]["objective"] > rows["objective_argmin"]["objective"]


def test_theorem_4_counterexample_two_member_class():
    # w = (1, 0), Σ = I. ŵ₁ = 0 satisfies rule 1 and has the smaller objective; ŵ₂ = (1, 1.05)
    # violates it and has the smaller MSE: 0.5 vs ≈ 0.4748 (Lemma 3's "B = 0 is best" fails).
    w, sigma_x = np.array([1.0, 0.0]), np.eye(2)
    scores = score_class(w, np.array([[0.0, 0.0], [1.0, 1.05]]), np.zeros(2), sigma_x)
    assert scores.residual[0] == 0.0 and scores.objective[0] < scores.objective[1]
    assert scores.mse[0] == pytest.approx(0.5)
    assert scores.mse[1] == pytest.approx(0.474786736, abs=1e-8)
    assert not compare_argmins(scores)[0].agree


def test_correlated_sigma_x_pruning_breaks_rule_1_and_the_argmin():
    # Non-diagonal Σ_X: pruned ŵ is no longer Σ-orthogonal to w − ŵ (found by search, seed 17).
    rng = np.random.default_rng(17)
    m = 6
    w = rng.standard_normal(m)
    factor = rng.standard_normal((m, m))
    sigma_x = factor @ factor.T / m + 0.05 * np.eye(m)
    single = [c for c in compare_argmins(pruning_class(w, sigma_x)) if c.group == 1][0]
    assert single.max_abs_residual > 0.1
    assert not single.agree
    assert single.mse_at_objective_argmin > 1.15 * single.min_mse


def test_too_large_classes_raise():
    with pytest.raises(ConfigError, match="2\\^17"):
        pruning_class(np.ones(17), np.ones(17))
    with pytest.raises(ConfigError, match="k\\^m"):
        quantization_class(np.ones(12), np.ones(12), 3)
