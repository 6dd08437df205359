"""The limit on a real model: the water-filling curve against Theorem 2's own implementation,
the Shannon lower bound below it, and the entropy estimator against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rdcompress.errors import ConfigError
from rdcompress.theory.model_limit import model_limit, vasicek_entropy_bits
from rdcompress.theory.waterfilling import LinearRegressionBound


def _model(seed=0):
    rng = np.random.default_rng(seed)
    weights = {"a": rng.normal(0, 0.5, (20, 8)), "b": rng.laplace(0, 0.1, 30)}
    importance = {"a": rng.gamma(2.0, 1.0, (20, 8)), "b": rng.gamma(1.0, 3.0, 30)}
    importance["a"][0, :3] = 0.0  # components that cost nothing to drop
    return weights, importance


def test_gaussian_curve_equals_theorem_2_with_the_layer_variances():
    weights, importance = _model()
    limit = model_limit(weights, importance)
    variances, lambdas = [], []
    for name, w in weights.items():
        I = importance[name].ravel()
        keep = I > 0
        variances.append(np.full(keep.sum(), np.mean(w * w)))
        lambdas.append(I[keep])
    bound = LinearRegressionBound(np.concatenate(variances), np.concatenate(lambdas))
    assert limit.zero_importance == 3 and limit.numel == 190
    for fraction in (1e-4, 1e-2, 0.1, 0.5, 0.9, 1.0):
        d = fraction * limit.max_distortion
        assert limit.gaussian_rate(d)[0] == pytest.approx(bound.rate(d, "bits"), rel=1e-9,
                                                          abs=1e-9)


def test_shannon_bound_lies_below_the_gaussian_curve():
    weights, importance = _model(1)
    limit = model_limit(weights, importance)
    d = np.geomspace(1e-6, 1, 30) * limit.max_distortion
    assert np.all(limit.shannon_rate(d) <= limit.gaussian_rate(d) + 1e-9)
    # at high rate they differ by the entropy power gap, which is small for Gaussian layers
    gaussian = {"g": np.random.default_rng(2).normal(0, 1, 40_000)}
    ones = {"g": np.ones(40_000)}
    tight = model_limit(gaussian, ones)
    small = 1e-4 * tight.max_distortion
    gap = (tight.gaussian_rate(small) - tight.shannon_rate(small))[0] / tight.numel
    assert 0 <= gap < 0.02  # bits per weight


def test_vasicek_estimator_matches_closed_forms():
    rng = np.random.default_rng(3)
    assert vasicek_entropy_bits(rng.normal(0, 2, 50_000)) == pytest.approx(
        0.5 * math.log2(2 * math.pi * math.e * 4), abs=0.03)
    assert vasicek_entropy_bits(rng.uniform(0, 3, 50_000)) == pytest.approx(math.log2(3),
                                                                            abs=0.03)
    with pytest.raises(ConfigError, match="at least 4"):
        vasicek_entropy_bits(np.ones(3))


def test_constant_layers_are_named_and_bad_importance_refused():
    weights, importance = _model()
    weights["c"], importance["c"] = np.ones(6), np.ones(6)
    assert model_limit(weights, importance).gaussian_entropy_layers == ("c",)
    importance["c"] = -np.ones(6)
    with pytest.raises(ConfigError, match="finite, >= 0"):
        model_limit(weights, importance)


def test_spread_is_the_am_gm_gap_of_the_importance_inside_each_layer():
    w = {"a": np.linspace(-1, 1, 8), "b": np.linspace(-2, 2, 4)}
    same = model_limit(w, {"a": np.full(8, 3.0), "b": np.full(4, 0.5)})
    assert same.spread_bits == pytest.approx(0.0, abs=1e-12)  # constant within layers
    mixed = model_limit(w, {"a": np.array([1.0, 4.0] * 4), "b": np.full(4, 0.5)})
    assert mixed.spread_bits == pytest.approx(8 * 0.5 * (math.log2(2.5) - 1.0))
