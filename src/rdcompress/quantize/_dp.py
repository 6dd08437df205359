"""Optimal partition of M sorted units into k contiguous runs: D_j(i) = min_t D_{j−1}(t) +
cost(t, i), one row per run count, each row by divide and conquer.

Divide and conquer needs the smallest optimal split t*(i) to be non-decreasing in i, which the
concave Monge (quadrangle) inequality of the run cost guarantees: cost(a, c) + cost(b, d) <=
cost(a, d) + cost(b, c) for a <= b <= c <= d. It holds for min_c Σ I (w − c)² (Grønlund et al.
2017, "Fast exact k-means, k-medians and Bregman divergence clustering in 1D") and, by the
same exchange argument, for any per-weight cost that grows with |w − c| and a centroid inside
its run's hull, so also for the quartic objective Σ I (w − c)² + H (w − c)⁴: give the runs
[a, c) and [b, d) the centroids of [b, c) and [a, d) in the order that keeps every weight of
[a, b) and [c, d) at least as near as before. Brute-force tests check the result.

One recursion level of all sub-intervals is one vectorized numpy pass: O(k·M·log M) cost
evaluations in total, O(k·log M) numpy calls.
"""

from __future__ import annotations

import numpy as np


def partition_dp(cost, M: int, k: int) -> np.ndarray:
    """Optimal split of units [0, M) into k non-empty contiguous runs; returns bounds (k + 1,).

    ``cost(t, i)`` is vectorized over index arrays and gives the cost of units [t, i).
    """
    if k == M:
        return np.arange(M + 1)
    all_i = np.arange(M + 1)
    prev = cost(np.zeros_like(all_i), all_i)  # D_1(i), (M + 1,)
    prev[0] = np.inf
    back = np.zeros((max(k - 2, 0), M + 1), dtype=np.int32)  # t*(i) for rows 2 .. k−1
    for j in range(2, k):
        prev, back[j - 2] = dc_row(prev, cost, lo=j, hi=M, opt_lo=j - 1)
    bounds = np.empty(k + 1, dtype=np.int64)
    bounds[0], bounds[k] = 0, M
    if k > 1:  # last row: only i = M is needed
        t = np.arange(k - 1, M)
        bounds[k - 1] = t[np.argmin(prev[t] + cost(t, np.full_like(t, M)))]
        for j in range(k - 1, 1, -1):
            bounds[j - 1] = back[j - 2, bounds[j]]
    return bounds


def dc_row(prev: np.ndarray, cost, lo: int, hi: int, opt_lo: int):
    """One DP row by divide and conquer, one vectorized pass per recursion level.

    Fills cur[i] = min_{opt_lo <= t < i} prev[t] + cost(t, i) for i in [lo, hi], using that the
    smallest argmin is monotone in i. Returns (cur (M + 1,), arg (M + 1,)).
    """
    cur = np.full(prev.size, np.inf)
    arg = np.zeros(prev.size, dtype=np.int32)
    # Pending sub-problems: i in [L, R], argmin searched in [OL, OR].
    L, R = np.array([lo]), np.array([hi])
    OL, OR = np.array([opt_lo]), np.array([hi - 1])
    while L.size:
        mid = (L + R) >> 1
        first_t, last_t = OL, np.minimum(OR, mid - 1)
        lengths = last_t - first_t + 1  # >= 1 by construction (OL <= L − 1)
        starts = np.cumsum(lengths) - lengths
        seg = np.repeat(np.arange(mid.size), lengths)  # (total,) sub-problem of each candidate
        t = np.arange(seg.size) - starts[seg] + first_t[seg]  # (total,) candidate split
        v = prev[t] + cost(t, mid[seg])
        vmin = np.minimum.reduceat(v, starts)  # (S,)
        hit = np.flatnonzero(v == vmin[seg])
        hit_seg = seg[hit]
        first = np.ones(hit.size, dtype=bool)
        np.not_equal(hit_seg[1:], hit_seg[:-1], out=first[1:])
        best = t[hit[first]]  # smallest argmin per segment
        cur[mid], arg[mid] = vmin, best
        left, right = L < mid, mid < R
        # (np.concatenate, not np.r_: this loop is hot and np.r_ costs ~10 µs a call)
        L, R = np.concatenate((L[left], mid[right] + 1)), np.concatenate((mid[left] - 1, R[right]))
        OL, OR = np.concatenate((OL[left], best[right])), np.concatenate((best[left], OR[right]))
    return cur, arg
