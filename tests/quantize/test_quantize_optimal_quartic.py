"""optimal_quantize with the quartic term: contiguity and optimality by brute force, run costs,
never worse than quartic k-means, and the histogram fast path (quadratic and quartic)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import rdcompress.quantize.histogram as histogram
from rdcompress.quantize import optimal_quantize, quartic_kmeans
from rdcompress.quantize.centroids import (
    QUARTIC_FIELDS,
    ClusterSums,
    cluster_sums,
    point_moments,
    run_cost,
    update_centroids,
)


def cluster_cost(w, I, H):
    """min_c Σ I (w − c)² + H (w − c)⁴ by a bounded scalar search (independent of the cubic)."""
    if w.size == 0 or (I.sum() == 0 and H.sum() == 0):
        return 0.0

    def f(c):
        d2 = (w - c) ** 2
        return float(np.sum(I * d2 + H * d2 * d2))

    if w.min() == w.max():
        return 0.0
    found = minimize_scalar(f, bounds=(w.min(), w.max()), method="bounded",
                            options={"xatol": 1e-12 * (1 + np.ptp(w))})
    return min(found.fun, f(w.min()), f(w.max()))


def brute_all_labelings(w, I, H, k):
    """min over all k**n labelings; each subset's cost computed once (bitmask memo)."""
    n = w.size
    memo = {}

    def cost(members):
        key = members
        if key not in memo:
            idx = [i for i in range(n) if members >> i & 1]
            memo[key] = cluster_cost(w[idx], I[idx], H[idx])
        return memo[key]

    best = np.inf
    for labels in itertools.product(range(k), repeat=n):
        masks = [0] * k
        for i, j in enumerate(labels):
            masks[j] |= 1 << i
        best = min(best, sum(cost(m) for m in masks))
    return best


def brute_contiguous(w, I, H, k):
    values = np.unique(w)
    best = np.inf
    for cuts in itertools.combinations(range(1, values.size), k - 1):
        total = 0.0
        for lo, hi in itertools.pairwise([0, *cuts, values.size]):
            members = (w >= values[lo]) & (w <= values[hi - 1])
            total += cluster_cost(w[members], I[members], H[members])
        best = min(best, total)
    return best


def random_case(rng, max_n):
    n = int(rng.integers(1, max_n + 1))
    w = np.round(rng.normal(size=n), 1)  # repeated values are common
    I = rng.exponential(size=n) * (rng.random(n) > 0.25)
    H = rng.exponential(size=n) * rng.uniform(0, 50) * (rng.random(n) > 0.25)
    return w, I, H, int(rng.integers(1, np.unique(w).size + 1))


def test_contiguity_claim_and_optimum_over_all_labelings():
    """The nearest-centroid argument: the best of all k**n labelings is a contiguous one."""
    rng = np.random.default_rng(10)
    for _ in range(25):
        w, I, H, k = random_case(rng, 7)
        k = min(k, 3)
        everything = brute_all_labelings(w, I, H, k)
        contiguous = brute_contiguous(w, I, H, k)
        assert contiguous == pytest.approx(everything, rel=1e-7, abs=1e-10)
        result = optimal_quantize(w, I, k, H=H)
        assert result.objective == pytest.approx(everything, rel=1e-7, abs=1e-10)


def test_brute_force_over_contiguous_partitions():
    rng = np.random.default_rng(11)
    for _ in range(60):
        w, I, H, k = random_case(rng, 11)
        result = optimal_quantize(w, I, k, H=H)
        assert result.objective == pytest.approx(brute_contiguous(w, I, H, k), rel=1e-7,
                                                 abs=1e-10)
        direct = float(np.sum(I * (w - result.reconstruction) ** 2
                              + H * (w - result.reconstruction) ** 4))
        assert result.objective == pytest.approx(direct, rel=1e-12, abs=1e-15)


def test_run_cost_matches_direct_evaluation():
    rng = np.random.default_rng(12)
    for _ in range(30):
        n = int(rng.integers(1, 40))
        w = rng.normal(loc=rng.normal(), scale=rng.uniform(0.01, 2), size=n)
        I, H = rng.exponential(size=n), rng.exponential(size=n) * rng.uniform(0, 100)
        rows = np.array([[values.sum()] for values in point_moments(w, I, H)])  # (F, 1)
        assert rows.shape[0] == len(QUARTIC_FIELDS)
        centroid, cost = run_cost(ClusterSums.from_rows(rows))
        d2 = (w - centroid[0]) ** 2
        assert cost[0] == pytest.approx(np.sum(I * d2 + H * d2 * d2), rel=1e-9, abs=1e-12)
        assert cost[0] == pytest.approx(cluster_cost(w, I, H), rel=1e-7, abs=1e-12)


def test_never_worse_than_quartic_kmeans_from_several_starts():
    rng = np.random.default_rng(13)
    for trial in range(4):
        w = rng.standard_t(4, size=1500)
        I, H = rng.exponential(size=1500), rng.exponential(size=1500) * 30
        k = int(rng.integers(2, 12))
        best = optimal_quantize(w, I, k, H=H).objective
        for init in ("quantile", "uniform", "random"):
            for seed in range(2):
                other = quartic_kmeans(w, I, H, k, init=init, seed=seed + 10 * trial)
                assert best <= other.objective * (1 + 1e-12)


def test_zero_quartic_term_is_the_quadratic_problem():
    rng = np.random.default_rng(14)
    w, I = rng.normal(size=300), rng.exponential(size=300)
    a = optimal_quantize(w, I, 5, H=np.zeros(300))
    b = optimal_quantize(w, I, 5)
    np.testing.assert_array_equal(a.assignments, b.assignments)
    np.testing.assert_allclose(a.codebook, b.codebook)


def lloyd_fixed_point(w, I, H, result):
    """Assignments are nearest-centroid and centroids optimal for their clusters."""
    nearest = np.argmin(np.abs(w[:, None] - result.codebook[None, :]), axis=1)
    np.testing.assert_allclose(result.codebook[nearest], result.reconstruction)
    for j, c in enumerate(result.codebook):
        members = result.assignments == j
        if not members.any():
            continue
        local = w[members] - c  # each cluster in its own coordinates: no cancellation
        sums = cluster_sums(local, I[members], None if H is None else H[members],
                            np.zeros(local.size, dtype=np.int64), 1)
        moved = update_centroids(sums, np.zeros(1))[0]
        # holds for far-off clusters (outliers) too: quartic centroids are refined in each
        # cluster's own frame (refine_centroids)
        assert abs(moved) <= 1e-9 * (1 + abs(c)), (j, c, moved)


@pytest.mark.parametrize("quartic", [False, True])
def test_histogram_path_close_to_exact_and_a_lloyd_fixed_point(quartic):
    rng = np.random.default_rng(15)
    n = 20000
    w = np.round(rng.laplace(size=n), 3)
    I = rng.exponential(size=n) * (rng.random(n) > 0.2)
    H = rng.exponential(size=n) * 5 if quartic else None
    exact = optimal_quantize(w, I, 12, H=H, exact_limit=None)
    coarse = optimal_quantize(w, I, 12, H=H, exact_limit=0, bins=256, polish_iter=0)
    fast = optimal_quantize(w, I, 12, H=H, exact_limit=0, bins=256)
    assert fast.iterations < 100  # converged
    tol = 1e-12 * exact.objective
    assert exact.objective - tol <= fast.objective <= coarse.objective + tol
    assert fast.objective <= exact.objective * 1.01
    lloyd_fixed_point(w, I, H, fast)
    d2 = (w - fast.reconstruction) ** 2
    direct = np.sum(I * d2) + (0 if H is None else np.sum(H * d2 * d2))
    assert fast.objective == pytest.approx(direct, rel=1e-12)


def test_histogram_escape_falls_back_to_a_full_assignment(monkeypatch):
    """With no window cells every midpoint lies outside them: assign all weights directly."""
    monkeypatch.setattr(histogram, "WINDOW", 0)
    rng = np.random.default_rng(16)
    w, I = rng.normal(size=5000), rng.exponential(size=5000)
    coarse = optimal_quantize(w, I, 6, exact_limit=0, bins=64, polish_iter=0)
    fast = optimal_quantize(w, I, 6, exact_limit=0, bins=64)
    assert fast.objective <= coarse.objective * (1 + 1e-12)
    nearest = np.argmin(np.abs(w[:, None] - fast.codebook[None, :]), axis=1)
    np.testing.assert_allclose(fast.codebook[nearest], fast.reconstruction)


def test_histogram_with_few_cells_falls_back_to_exact():
    w = np.repeat([-1.0, 0.0, 0.5, 2.0, 7.0], 2000)
    I = np.ones_like(w)
    result = optimal_quantize(w, I, 5, exact_limit=0, bins=3)  # 3 cells < k: the exact DP
    assert result.objective <= 1e-18  # lossless up to the rounding of the centred sums
    np.testing.assert_allclose(result.codebook, [-1.0, 0.0, 0.5, 2.0, 7.0], atol=1e-12)


def test_histogram_path_random_layers_against_exact():
    """Outliers (most weights in a few cells), duplicates, zero importances, quartic or not."""
    rng = np.random.default_rng(17)
    for trial in range(12):
        n = int(rng.integers(500, 3000))
        w = rng.standard_t(2, size=n) if trial % 3 == 0 else np.round(rng.normal(size=n), 2)
        if trial % 4 == 1:
            w[:3] = [40.0, -25.0, 60.0]  # outliers stretch the cells
        I = rng.exponential(size=n) * (rng.random(n) > 0.3)
        H = rng.exponential(size=n) * 10 if trial % 2 else None
        k = int(rng.integers(1, 9))
        exact = optimal_quantize(w, I, k, H=H, exact_limit=None)
        fast = optimal_quantize(w, I, k, H=H, exact_limit=0, bins=int(rng.integers(8, 200)))
        assert fast.codebook.size == k and fast.assignments.shape == (n,), trial
        assert fast.objective >= exact.objective * (1 - 1e-9) - 1e-12
        d2 = (w - fast.reconstruction) ** 2
        direct = np.sum(I * d2) + (0 if H is None else np.sum(H * d2 * d2))
        assert fast.objective == pytest.approx(direct, rel=1e-12, abs=1e-300)
        if fast.iterations < 100:
            lloyd_fixed_point(w, I, H, fast)


def test_polish_iter_caps_the_steps():
    rng = np.random.default_rng(18)
    w, I = rng.laplace(size=20000), rng.exponential(size=20000)
    results = [optimal_quantize(w, I, 8, exact_limit=0, bins=128, polish_iter=p)
               for p in (0, 1, 3, 100)]
    assert [r.iterations for r in results[:3]] == [0, 1, 3]
    objectives = [r.objective for r in results]
    assert all(b <= a * (1 + 1e-12) for a, b in itertools.pairwise(objectives))


@pytest.mark.parametrize("exact_limit", [None, 0])
def test_far_off_quartic_cluster_keeps_its_digits(exact_limit):
    """A lone outlier with I = 0: its cubic has a triple root, which moments about the layer's
    mean would blur by ~1e-4 (ε^(1/3)); the in-cluster refinement restores it."""
    w = np.tile(np.r_[np.linspace(-1, 1, 50), 60.0], 40)
    I = np.tile(np.r_[np.ones(50), 0.0], 40)
    result = optimal_quantize(w, I, 3, H=np.ones_like(w), exact_limit=exact_limit, bins=64)
    assert result.codebook[-1] == pytest.approx(60.0, abs=1e-7)  # unrefined: off by ~1e-3
