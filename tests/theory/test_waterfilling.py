"""Theorem 2 water-filling: closed forms, Figure 6, a general convex solver, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from rdcompress.errors import ConfigError
from rdcompress.theory.gaussian import gaussian_distortion, gaussian_rate
from rdcompress.theory.waterfilling import LinearRegressionBound


def test_gaussian_example_1_closed_form():
    assert gaussian_rate(4.0, 1.0) == pytest.approx(1.0)            # ½ log2 4
    assert gaussian_rate(4.0, 1.0, units="nats") == pytest.approx(math.log(2.0))
    assert gaussian_rate(4.0, 5.0) == 0.0
    assert gaussian_distortion(4.0, 1.0) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="distortion"):
        gaussian_rate(1.0, 0.0)
    with pytest.raises(ConfigError, match="units"):
        gaussian_rate(1.0, 0.5, units="bans")


def test_one_dimension_reduces_to_example_1():
    # λ scales the distortion: d = λ (w − ŵ)², so R(D) = ½ log2(λ σ² / D).
    bound = LinearRegressionBound([2.5], [4.0])
    for distortion in (0.1, 1.0, 9.9):
        assert bound.rate(distortion) == pytest.approx(0.5 * math.log2(10.0 / distortion))
    assert bound.rate(10.0) == 0.0 and bound.rate(50.0) == 0.0


def test_figure_6_segments_by_hand():
    # Σ_W = Σ_X = diag[3,2,1]: breakpoints b = λ E W² = 9, 4, 1; kinks at D = 3 and D = 9.
    bound = LinearRegressionBound([3, 2, 1], [3, 2, 1])
    kinks = bound.kinks()
    assert [k.distortion for k in kinks] == pytest.approx([3.0, 9.0])
    assert [k.rate for k in kinks] == pytest.approx([math.log2(6), 0.5 * math.log2(2.25)])
    seg_a = bound.levels(1.0)                  # μ = 1/3, all active
    assert seg_a.mu == pytest.approx(1 / 3)
    np.testing.assert_allclose(seg_a.levels, [1 / 9, 1 / 6, 1 / 3])
    assert seg_a.rate == pytest.approx(0.5 * math.log2(6 / (1 / 9 * 1 / 6 * 1 / 3)))
    seg_b = bound.levels(5.0)                  # third full: 2μ + 1 = 5 → μ = 2
    np.testing.assert_allclose(seg_b.levels, [2 / 3, 1.0, 1.0])
    assert seg_b.active.tolist() == [True, True, False]
    seg_c = bound.levels(12.0)                 # μ + 4 + 1 = 12 → μ = 7
    np.testing.assert_allclose(seg_c.levels, [7 / 3, 2.0, 1.0])
    assert seg_c.rate_per_weight == pytest.approx(seg_c.rate / 3)
    assert bound.max_distortion == 14.0 and bound.rate(14.0) == 0.0


def _scipy_water_filling(lam, var, distortion):
    """Max Σ ½ log min(D_i, v_i) s.t. Σ λ_i D_i = D, in variables t_i = log D_i ≤ log v_i."""
    upper = np.log(var)
    x0 = np.minimum(np.log(distortion / (lam.size * lam)), upper - 1e-3)
    result = minimize(lambda t: -0.5 * t.sum(), x0, jac=lambda t: -0.5 * np.ones_like(t),
                      method="SLSQP", bounds=list(zip([None] * lam.size, upper, strict=True)),
                      constraints=[{"type": "ineq", "fun": lambda t: distortion - lam @ np.exp(t),
                                    "jac": lambda t: -(lam * np.exp(t))}],
                      options={"ftol": 1e-12, "maxiter": 500})
    # SLSQP may stop with status 8 ("positive directional derivative") AT the optimum; the
    # comparison below is the real check, after checking the point is feasible.
    assert result.status in (0, 8), result.message
    levels = np.exp(result.x)
    assert lam @ levels <= distortion * (1 + 1e-9) and np.all(levels <= var * (1 + 1e-9))
    return levels


@pytest.mark.parametrize("seed", range(8))
def test_exact_levels_match_scipy_slsqp(seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 9))
    lam, var = rng.uniform(0.1, 5.0, m), rng.uniform(0.1, 5.0, m)
    bound = LinearRegressionBound(var, lam)
    distortion = rng.uniform(0.02, 0.98) * bound.max_distortion
    solution = bound.levels(distortion, units="nats")
    reference = _scipy_water_filling(lam, var, distortion)
    np.testing.assert_allclose(solution.levels, reference, rtol=1e-5)
    assert solution.distortion == pytest.approx(distortion, rel=1e-12)
    reference_rate = 0.5 * np.log(var / reference).sum()
    assert solution.rate == pytest.approx(reference_rate, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_inverse_rate_round_trip(seed):
    rng = np.random.default_rng(100 + seed)
    m = 6
    bound = LinearRegressionBound(rng.uniform(0.1, 3, m), rng.uniform(0.1, 3, m))
    for distortion in rng.uniform(0.001, 1.0, 5) * bound.max_distortion:
        rate = bound.rate(distortion)
        assert bound.distortion(rate) == pytest.approx(distortion, rel=1e-10)
    for rate in (0.01, 0.7, 3.0, 40.0):
        assert bound.rate(bound.distortion(rate)) == pytest.approx(rate, rel=1e-10)


def test_edge_cases_zero_rate_tiny_distortion_equal_breakpoints():
    bound = LinearRegressionBound([1.0, 4.0, 2.0], [4.0, 1.0, 2.0])   # all b_i = 4
    assert bound.kinks() == []                                      # a single kink at D_max
    solution = bound.levels(6.0)                                    # 3μ = 6
    assert solution.mu == pytest.approx(2.0)
    assert bound.rate(12.0) == 0.0 and bound.rate(1e6) == 0.0
    assert bound.distortion(0.0) == pytest.approx(12.0)
    # D → 0: R ≈ ½ Σ log2(b_i m / D) (all active, equal μ = D/m).
    tiny = 1e-9
    expected = 0.5 * np.log2(np.array([4.0, 4.0, 4.0]) * 3 / tiny).sum()
    assert bound.rate(tiny) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ConfigError, match="> 0"):
        bound.levels(0.0)


def test_correlated_sigma_w_log_det_and_not_tight():
    sigma_w = np.array([[2.0, 0.9], [0.9, 1.0]])
    bound = LinearRegressionBound(sigma_w, [1.0, 1.0])
    assert not bound.is_tight
    solution = bound.levels(0.5, units="nats")                      # μ = 0.25, both active
    expected = 0.5 * np.log(np.linalg.det(sigma_w)) - np.log(0.25)
    assert solution.rate == pytest.approx(expected)
    assert bound.rate(bound.max_distortion) == 0.0   # raw bound is negative there: clipped
    assert bound.distortion(0.0) < bound.max_distortion


def test_rotated_sigma_x_equals_diagonal_problem():
    rng = np.random.default_rng(3)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    lam = np.array([3.0, 2.0, 1.0])
    sigma_w = np.diag([1.0, 2.0, 0.5])
    rotated = LinearRegressionBound(q @ sigma_w @ q.T, q @ np.diag(lam) @ q.T)
    plain = LinearRegressionBound(np.diag(sigma_w), lam)
    for distortion in (0.3, 2.0, 4.0):
        assert rotated.rate(distortion) == pytest.approx(plain.rate(distortion), rel=1e-9)


@pytest.mark.parametrize("sigma_w, sigma_x, match", [
    ([1.0, -1.0], [1.0, 1.0], "finite variances > 0"),
    ([1.0, 1.0], [1.0, 0.0], "finite variances > 0"),
    ([[1.0, 2.0], [2.0, 1.0]], [1.0, 1.0], "positive definite"),
    ([[1.0, 0.5], [0.0, 1.0]], [1.0, 1.0], "symmetric"),
    ([1.0, 2.0, 3.0], [1.0, 1.0], "3-dimensional"),
])
def test_bad_covariances_raise(sigma_w, sigma_x, match):
    with pytest.raises(ConfigError, match=match):
        LinearRegressionBound(sigma_w, sigma_x)


def test_curve_contains_kinks_and_is_decreasing():
    bound = LinearRegressionBound([3, 2, 1], [3, 2, 1])
    distortions, rates = bound.curve(50)
    assert 3.0 in distortions and 9.0 in distortions
    assert np.all(np.diff(rates) <= 1e-12) and rates[-1] == 0.0
    assert bound.curve(50, units="nats")[1][0] == pytest.approx(rates[0] * math.log(2))


def test_levels_at_max_distortion_are_finite_when_sums_round_differently():
    """Issue 18: D = max_distortion (np.sum of the unsorted breakpoints) can exceed the sorted
    cumulative sum by one ulp; the old code then divided 0 by 0 and returned NaN levels."""
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        m = int(rng.integers(2, 12))
        bound = LinearRegressionBound(rng.uniform(0.1, 3, m), rng.uniform(0.1, 3, m))
        cumulative = float(np.cumsum(np.sort(bound.breakpoints))[-1])
        if cumulative == bound.max_distortion:
            continue
        checked += 1
        for distortion in (bound.max_distortion, cumulative):
            solution = bound.levels(distortion)
            assert np.isfinite(solution.mu) and np.all(np.isfinite(solution.levels))
            # At D_max every rectangle is full: D_i = E[W_i^2], rate 0.
            np.testing.assert_allclose(solution.levels, bound.second_moments, rtol=1e-12)
            assert solution.rate < 1e-12
    assert checked > 0  # the draw must include sums that differ in the last bit
