"""ECSQ on a uniform grid: every assignment step against an exhaustive argmin."""

from __future__ import annotations

import numpy as np
import pytest

from rdcompress.errors import ConfigError
from rdcompress.kernels.uniform import (
    assign_levels,
    ecsq_uniform,
    grid_step,
    reconstruct,
)


def brute_assign(w, I, step, rate, low, lam, H=None):
    """Every level scored for every weight; ties: cheaper rate, then nearer, then lower."""
    levels = np.arange(low, low + rate.size)
    ok = np.isfinite(rate)
    levels, rate = levels[ok], rate[ok]
    values = reconstruct(step, levels).astype(np.float64)
    out = np.empty(w.size, np.int64)
    for i in range(w.size):
        d2 = (w[i] - values) ** 2
        cost = I[i] * d2 + (0 if H is None else H[i] * d2 * d2) + lam * rate
        best = min(range(levels.size),
                   key=lambda j: (cost[j], rate[j], abs(w[i] - values[j]), levels[j]))
        out[i] = levels[best]
    return out


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("quartic", [False, True])
def test_assign_levels_is_the_exhaustive_argmin(seed, quartic):
    rng = np.random.default_rng(seed)
    n = 300
    w = rng.standard_normal(n) * rng.choice([0.1, 1.0, 3.0])
    I = rng.exponential(size=n) * (rng.random(n) > 0.2)  # some zero importances
    H = rng.exponential(size=n) * (rng.random(n) > 0.5) if quartic else None
    step = float(rng.choice([0.05, 0.3, 1.0, 2.5]))
    low, high = int(np.floor(w.min() / step)) - 1, int(np.ceil(w.max() / step)) + 1
    rate = rng.exponential(3.0, size=high - low + 1)
    rate[rng.random(rate.size) < 0.2] = np.inf  # unavailable levels
    rate[rng.integers(rate.size)] = 0.5
    lam = float(rng.choice([0.0, 0.01, 0.3, 5.0]))
    got = assign_levels(w, I, step, rate, low, lam, H)
    want = brute_assign(w, I, grid_step(step), rate, low, lam, H)
    np.testing.assert_array_equal(got, want)


def test_lambda_zero_is_rounding_and_zero_importance_goes_to_the_mode():
    w = np.array([0.04, 0.26, -0.74, 1.01, 0.9, 0.3])
    I = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    result = ecsq_uniform(w, I, 0.5)
    # nearest levels 0, 1, -1, 2, (I=0: among the most probable levels 1 and 2, the nearer), 1
    np.testing.assert_array_equal(result.levels, [0, 1, -1, 2, 2, 1])
    # zero importance everywhere, all levels equally likely: the nearest level, never the first
    # (lowest) one, which the old tie-break sent every weight of importance 0 to
    result = ecsq_uniform(np.array([-2.0, 0.1, 0.2, 0.05]), np.zeros(4), 0.1)
    np.testing.assert_array_equal(result.levels, [-20, 1, 2, 0])
    assert result.converged


@pytest.mark.parametrize("seed", range(6))
def test_lagrangian_never_increases_and_rate_falls_with_lambda(seed):
    rng = np.random.default_rng(seed)
    w, I = rng.laplace(size=2000), rng.exponential(size=2000)
    step = 0.2
    previous_bits = np.inf
    for lam in [0.0, 0.01, 0.05, 0.2, 1.0]:
        result = ecsq_uniform(w, I, step, lam)
        # the fixed point is no worse than plain rounding, in the Lagrangian it minimises
        rounding = ecsq_uniform(w, I, step, 0.0)
        assert (result.distortion + lam * result.entropy_bits
                <= rounding.distortion + lam * rounding.entropy_bits + 1e-9)
        assert result.entropy_bits <= previous_bits + 1e-9
        previous_bits = result.entropy_bits


def test_reported_figures_match_the_levels():
    rng = np.random.default_rng(0)
    w, I = rng.standard_normal(500), rng.exponential(size=500)
    result = ecsq_uniform(w, I, 0.37, 0.1)
    w_hat = reconstruct(0.37, result.levels).astype(np.float64)
    assert result.distortion == pytest.approx(float((I * (w - w_hat) ** 2).sum()), rel=1e-12)
    _, counts = np.unique(result.levels, return_counts=True)
    bits = -(counts * np.log2(counts / 500)).sum()
    assert result.entropy_bits == pytest.approx(bits, rel=1e-12)
    assert result.low == result.levels.min()
    assert reconstruct(0.37, result.levels).dtype == np.float32


def test_bad_inputs_are_refused():
    with pytest.raises(ConfigError, match="step"):
        ecsq_uniform(np.ones(3), np.ones(3), 0.0)
    with pytest.raises(ConfigError, match="lam"):
        ecsq_uniform(np.ones(3), np.ones(3), 0.1, -1.0)
    with pytest.raises(ConfigError, match="NaN"):
        ecsq_uniform(np.array([1.0, np.nan]), np.ones(2), 0.1)
    with pytest.raises(ConfigError, match="level"):
        ecsq_uniform(np.array([1e6]), np.ones(1), 1e-3)
    assert ecsq_uniform(np.zeros(0), np.zeros(0), 1.0).levels.size == 0
