"""Algorithm 1 by Monte Carlo: E d(W, Ŵ) = D and I(W; Ŵ) = R̲(D)."""

from __future__ import annotations

import numpy as np
import pytest

from rdcompress.errors import ConfigError
from rdcompress.theory.achievability import (
    algorithm1_mutual_information,
    gaussian_mutual_information_from_samples,
    optimal_compressor_mutual_information,
    sample_optimal_compressor,
)
from rdcompress.theory.waterfilling import LinearRegressionBound

NUM_SAMPLES = 200_000


@pytest.mark.parametrize("distortion", [1.0, 5.0, 12.0])   # Figure 6 segments (a), (b), (c)
def test_monte_carlo_distortion_and_rate_match_bound(distortion):
    var, lam = np.array([3.0, 2.0, 1.0]), np.array([3.0, 2.0, 1.0])
    bound = LinearRegressionBound(var, lam)
    solution = bound.levels(distortion)
    rng = np.random.default_rng(0)
    weights = rng.standard_normal((NUM_SAMPLES, 3)) * np.sqrt(var)          # (n, 3)
    recon = sample_optimal_compressor(weights, var, solution.levels, rng)     # (n, 3)
    per_sample = ((weights - recon) ** 2 * lam).sum(axis=1)                 # d(W, Ŵ)
    standard_error = per_sample.std() / np.sqrt(NUM_SAMPLES)
    assert abs(per_sample.mean() - distortion) < 4 * standard_error
    # Full rectangles decode to 0; active coordinates satisfy golden rule 1: Ŵ ⟂ W − Ŵ.
    assert np.all(recon[:, ~solution.active] == 0)
    cross = (recon * (weights - recon) * lam).sum(axis=1)
    assert abs(cross.mean()) < 4 * cross.std() / np.sqrt(NUM_SAMPLES)
    closed_form = optimal_compressor_mutual_information(var, solution.levels)
    assert closed_form == pytest.approx(solution.rate, rel=1e-12)
    assert algorithm1_mutual_information(np.diag(var), solution.levels) == pytest.approx(
        solution.rate, rel=1e-12)
    plug_in = gaussian_mutual_information_from_samples(weights, recon)
    assert plug_in == pytest.approx(solution.rate, abs=0.02)


def test_correlated_sigma_w_algorithm1_exceeds_bound():
    sigma_w = np.array([[2.0, 1.2], [1.2, 1.0]])
    bound = LinearRegressionBound(sigma_w, [1.0, 2.0])
    solution = bound.levels(0.3)
    achieved = algorithm1_mutual_information(sigma_w, solution.levels)
    assert achieved > solution.rate + 0.1   # the bound is not tight for correlated Σ_W
    rng = np.random.default_rng(1)
    weights = rng.multivariate_normal([0, 0], sigma_w, size=NUM_SAMPLES)
    recon = sample_optimal_compressor(weights, np.diag(sigma_w), solution.levels, rng)
    assert gaussian_mutual_information_from_samples(weights, recon) == pytest.approx(
        achieved, abs=0.02)


def test_bad_levels_raise():
    with pytest.raises(ConfigError, match="levels"):
        sample_optimal_compressor(np.zeros((2, 2)), np.ones(2), np.array([2.0, 0.5]),
                                  np.random.default_rng(0))
    with pytest.raises(ConfigError, match="with m = 2"):
        sample_optimal_compressor(np.zeros((2, 3)), np.ones(2), np.ones(2) * 0.5,
                                  np.random.default_rng(0))
