"""weighted_lloyd: hand-computed toys, a naive O(n·k) reference, validation errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdcompress.errors import ConfigError, NonFiniteError
from rdcompress.quantize import weighted_lloyd
from rdcompress.quantize.lloyd import init_codebook


def naive_lloyd(w, I, codebook, iterations=500):
    """Obviously correct weighted k-means: dense distances, bincount means, O(n·k)."""
    c = np.sort(np.asarray(codebook, dtype=np.float64))
    for _ in range(iterations):
        labels = np.argmin(np.abs(w[:, None] - c[None, :]), axis=1)
        s_i = np.bincount(labels, I, minlength=c.size)
        s_iw = np.bincount(labels, I * w, minlength=c.size)
        count = np.bincount(labels, minlength=c.size)
        s_w = np.bincount(labels, w, minlength=c.size)
        new = c.copy()
        new[s_i > 0] = s_iw[s_i > 0] / s_i[s_i > 0]
        plain = (s_i == 0) & (count > 0)
        new[plain] = s_w[plain] / count[plain]
        new = np.sort(new)
        if np.array_equal(new, c):
            break
        c = new
    labels = np.argmin(np.abs(w[:, None] - c[None, :]), axis=1)
    return c, float(np.sum(I * (w - c[labels]) ** 2))


def test_two_obvious_clusters():
    result = weighted_lloyd(np.array([0.0, 1.0, 10.0, 11.0]), None, 2)
    np.testing.assert_allclose(result.codebook, [0.5, 10.5])
    np.testing.assert_array_equal(result.assignments, [0, 0, 1, 1])
    assert result.objective == pytest.approx(4 * 0.25)
    assert result.converged


def test_weighted_centroid_by_hand():
    # one cluster: c = (3·0 + 1·1) / 4 = 0.25; J = 3·0.0625 + 0.5625 = 0.75
    result = weighted_lloyd(np.array([0.0, 1.0]), np.array([3.0, 1.0]), 1)
    np.testing.assert_allclose(result.codebook, [0.25])
    assert result.objective == pytest.approx(0.75)


def test_zero_importance_cluster_takes_plain_mean():
    w, I = np.array([0.0, 1.0, 10.0, 12.0]), np.array([1.0, 1.0, 0.0, 0.0])
    result = weighted_lloyd(w, I, 2)
    np.testing.assert_allclose(result.codebook, [0.5, 11.0])
    assert result.objective == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(6))
def test_matches_naive_reference_from_same_start(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(20, 300)), int(rng.integers(1, 9))
    w, I = rng.normal(size=n), rng.exponential(size=n) * (rng.random(n) > 0.1)
    start = init_codebook(w, k, "random", seed)
    result = weighted_lloyd(w, I, k, init=start, max_iter=500)
    codebook, objective = naive_lloyd(w, I, start)
    np.testing.assert_allclose(result.codebook, codebook, rtol=1e-9, atol=1e-12)
    assert result.objective == pytest.approx(objective, rel=1e-9, abs=1e-12)


def test_fixed_point_and_never_worse_than_start():
    rng = np.random.default_rng(1)
    w, I = rng.standard_t(3, size=2000), rng.exponential(size=2000)
    start = init_codebook(w, 8, "quantile")
    start_labels = np.argmin(np.abs(w[:, None] - start[None, :]), axis=1)
    start_objective = float(np.sum(I * (w - start[start_labels]) ** 2))
    result = weighted_lloyd(w, I, 8)
    assert result.objective <= start_objective
    for j, c in enumerate(result.codebook):  # each centroid is its cluster's weighted mean
        members = result.assignments == j
        assert c == pytest.approx(np.sum(I[members] * w[members]) / np.sum(I[members]))
    nearest = np.argmin(np.abs(w[:, None] - result.codebook[None, :]), axis=1)
    np.testing.assert_array_equal(result.codebook[nearest], result.reconstruction)


def test_accepts_torch_and_inits():
    w = torch.linspace(-1, 1, 101)
    for init in ("quantile", "uniform", "random"):
        result = weighted_lloyd(w, torch.ones(101), 3, init=init)
        assert result.codebook.shape == (3,) and result.assignments.shape == (101,)
        assert result.objective < np.sum(np.linspace(-1, 1, 101) ** 2)


def test_heavy_duplicates_still_get_distinct_initial_centroids():
    w = np.r_[np.zeros(1000), 1.0, 2.0, 3.0]
    assert np.unique(init_codebook(w, 4, "quantile")).size == 4
    assert weighted_lloyd(w, None, 4).objective == pytest.approx(0.0)


def test_errors():
    with pytest.raises(ConfigError, match=r"k=5 .*4 distinct"):
        weighted_lloyd(np.array([1.0, 2.0, 3.0, 3.0, 4.0]), None, 5)
    with pytest.raises(NonFiniteError, match="index 1"):
        weighted_lloyd(np.array([1.0, np.nan, 3.0]), None, 1)
    with pytest.raises(ConfigError, match="negative"):
        weighted_lloyd(np.array([1.0, 2.0]), np.array([1.0, -1.0]), 1)
    with pytest.raises(ConfigError, match="shape"):
        weighted_lloyd(np.array([1.0, 2.0]), np.array([1.0]), 1)
    with pytest.raises(ConfigError, match="1-D"):
        weighted_lloyd(np.ones((2, 2)), None, 1)
    with pytest.raises(ConfigError, match="init"):
        weighted_lloyd(np.array([1.0, 2.0]), None, 1, init="bogus")
