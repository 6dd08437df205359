"""Entropy-constrained quantization: λ = 0 is weighted k-means; λ > 0 trades distortion for rate."""

from __future__ import annotations

import numpy as np
import pytest

from rdcompress.errors import ConfigError
from rdcompress.quantize import entropy_constrained, weighted_lloyd


def lagrangian(result, I, w, lam):
    d = np.sum(I * (w - result.reconstruction) ** 2)
    return d + lam * w.size * result.entropy_bits


@pytest.fixture
def layer():
    rng = np.random.default_rng(0)
    return rng.laplace(size=3000), rng.exponential(size=3000)


def test_lambda_zero_equals_weighted_lloyd(layer):
    w, I = layer
    a, b = entropy_constrained(w, I, 8, 0.0), weighted_lloyd(w, I, 8)
    np.testing.assert_allclose(a.codebook, b.codebook)
    np.testing.assert_array_equal(a.assignments, b.assignments)
    assert a.objective == pytest.approx(b.objective)


def test_rate_term_lowers_entropy_and_lagrangian(layer):
    w, I = layer
    base = weighted_lloyd(w, I, 16)
    for lam in (1e-3, 1e-2, 1e-1):
        result = entropy_constrained(w, I, 16, lam)
        assert result.entropy_bits < base.entropy_bits
        assert lagrangian(result, I, w, lam) <= lagrangian(base, I, w, lam)
        assert result.objective == pytest.approx(np.sum(I * (w - result.reconstruction) ** 2))


def test_huge_lambda_collapses_to_one_cluster(layer):
    w, I = layer
    result = entropy_constrained(w, I, 8, 1e6)
    assert result.codebook.size == 1 and result.entropy_bits == 0.0
    assert result.codebook[0] == pytest.approx(np.dot(I, w) / I.sum())


def test_unimportant_weights_join_the_most_frequent_cluster():
    w = np.r_[np.zeros(90), np.full(10, 5.0), [4.0]]
    I = np.r_[np.ones(100), [0.0]]
    result = entropy_constrained(w, I, 2, 0.01)
    assert result.assignments[-1] == result.assignments[0]  # 4.0 goes to the big zero cluster


def test_errors():
    with pytest.raises(ConfigError, match="lam"):
        entropy_constrained(np.arange(5.0), None, 2, -1.0)
    with pytest.raises(ConfigError, match=r"k=9 .*5 distinct"):
        entropy_constrained(np.arange(5.0), None, 9, 0.1)
