"""optimal_quantize: brute force over partitions and assignments; never worse than Lloyd."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from rdcompress.errors import ConfigError
from rdcompress.quantize import optimal_quantize, weighted_lloyd


def cluster_cost(w, I):
    if I.sum() > 0:
        c = np.dot(I, w) / I.sum()
        return float(np.dot(I, (w - c) ** 2))
    return 0.0


def brute_contiguous(w, I, k):
    """min over all splits of the sorted DISTINCT values into k runs."""
    values = np.unique(w)
    best = np.inf
    for cuts in itertools.combinations(range(1, values.size), k - 1):
        bounds = [0, *cuts, values.size]
        total = 0.0
        for lo, hi in itertools.pairwise(bounds):
            members = (w >= values[lo]) & (w <= values[hi - 1])
            total += cluster_cost(w[members], I[members])
        best = min(best, total)
    return best


def brute_assignments(w, I, k):
    """min over all k**n labelings (each cluster at its optimal centroid)."""
    best = np.inf
    for labels in itertools.product(range(k), repeat=w.size):
        labels = np.array(labels)
        total = sum(cluster_cost(w[labels == j], I[labels == j]) for j in range(k))
        best = min(best, total)
    return best


def random_case(rng, max_n):
    n = int(rng.integers(1, max_n + 1))
    w = np.round(rng.normal(size=n), 1)  # rounding makes ties and repeated values common
    I = rng.exponential(size=n) * (rng.random(n) > 0.25)
    k = int(rng.integers(1, np.unique(w).size + 1))
    return w, I, k


def test_brute_force_over_contiguous_partitions():
    rng = np.random.default_rng(0)
    for _ in range(150):
        w, I, k = random_case(rng, 11)
        result = optimal_quantize(w, I, k)
        assert result.objective == pytest.approx(brute_contiguous(w, I, k), rel=1e-9, abs=1e-12)
        assert np.unique(result.assignments).size <= k


def test_brute_force_over_all_assignments():
    rng = np.random.default_rng(1)
    for _ in range(40):
        w, I, k = random_case(rng, 7)
        k = min(k, 3)
        result = optimal_quantize(w, I, k)
        assert result.objective == pytest.approx(brute_assignments(w, I, k), rel=1e-9, abs=1e-12)


def test_never_worse_than_lloyd_from_random_starts():
    rng = np.random.default_rng(2)
    for trial in range(8):
        w = rng.standard_t(4, size=3000)
        I = rng.exponential(size=3000)
        k = int(rng.integers(2, 20))
        best = optimal_quantize(w, I, k).objective
        for seed in range(5):
            lloyd = weighted_lloyd(w, I, k, init="random", seed=seed + 10 * trial)
            assert best <= lloyd.objective * (1 + 1e-12)


def test_reported_partition_is_consistent():
    rng = np.random.default_rng(3)
    w, I = rng.normal(size=500), rng.exponential(size=500)
    result = optimal_quantize(w, I, 7)
    assert np.all(np.diff(result.codebook) > 0)
    direct = float(np.sum(I * (w - result.reconstruction) ** 2))
    assert result.objective == pytest.approx(direct)
    np.testing.assert_array_equal(  # clusters are contiguous runs of the sorted weights
        np.diff(result.assignments[np.argsort(w, kind="stable")]) >= 0, True)


def test_histogram_path_close_to_exact_and_polished():
    rng = np.random.default_rng(4)
    w, I = rng.normal(size=20000), rng.exponential(size=20000)
    exact = optimal_quantize(w, I, 16, exact_limit=None)
    coarse = optimal_quantize(w, I, 16, exact_limit=0, bins=256, polish_iter=0)
    polished = optimal_quantize(w, I, 16, exact_limit=0, bins=256, polish_iter=50)
    assert exact.objective <= polished.objective <= coarse.objective * (1 + 1e-12)
    assert polished.objective <= exact.objective * 1.01


def test_k_equals_distinct_is_lossless_and_torch_input():
    w = torch.tensor([3.0, 1.0, 2.0, 1.0, 3.0])
    result = optimal_quantize(w, None, 3)
    assert result.objective == 0.0
    np.testing.assert_allclose(result.codebook, [1.0, 2.0, 3.0])


def test_k_too_large():
    with pytest.raises(ConfigError, match=r"k=4 .*3 distinct"):
        optimal_quantize(np.array([1.0, 2.0, 2.0, 3.0]), None, 4)


def test_fast_path_with_duplicates_and_zero_importance():
    rng = np.random.default_rng(5)
    w = np.round(rng.laplace(size=30000), 2)
    I = rng.exponential(size=30000) * (rng.random(30000) > 0.3)
    exact = optimal_quantize(w, I, 12, exact_limit=None)
    fast = optimal_quantize(w, I, 12, exact_limit=0, bins=512)
    assert fast.objective == pytest.approx(np.sum(I * (w - fast.reconstruction) ** 2))
    assert exact.objective <= fast.objective <= exact.objective * 1.01
    nearest = np.argmin(np.abs(w[:, None] - fast.codebook[None, :]), axis=1)
    np.testing.assert_allclose(fast.codebook[nearest], fast.reconstruction)
