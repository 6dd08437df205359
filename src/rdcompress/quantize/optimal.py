"""Globally optimal weighted 1-D quantization by dynamic programming over sorted weights.

With I_i >= 0 the optimal assignment for any codebook is the nearest centroid, so an optimal
quantizer's clusters are contiguous runs of the sorted distinct weights (equal weights together).
With prefix sums of I, I·w, I·w² a run's optimal cost is O(1):

    cost(t, i) = Σ I w² − (Σ I w)² / Σ I        over the distinct values [t, i)      (§5.3)

and   D_j(i) = min_{t<i} D_{j−1}(t) + cost(t, i),   D_1(i) = cost(0, i),   answer D_k(m).

The weighted sum-of-squares cost satisfies the concave Monge (quadrangle) inequality, so the
smallest optimal split t*(i) is non-decreasing in i and each row is filled by divide and
conquer in O(m log m) (Grønlund et al. 2017, "Fast exact k-means ... in 1D"). Here one
recursion level of all sub-intervals is one vectorized numpy pass: O(k·m·log m) in total.

For layers where k·m is large the same DP runs over ``bins`` groups of consecutive distinct
values of about equal count (a fine histogram), and Lloyd steps from its centroids polish the
result; both only lower J. ``bench/quantize.py`` measures the gap to the exact optimum.
"""

from __future__ import annotations

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.quantize._common import QuantizationResult, distortion, prepare
from rdcompress.quantize.lloyd import lloyd_from
from rdcompress.quantize.sorted_layer import SortedLayer


def optimal_quantize(
    w, I=None, k: int = 16, *, exact_limit: int | None = 1 << 21, bins: int = 8192,
    polish_iter: int = 100,
) -> QuantizationResult:
    """The k-centroid quantizer minimizing Σ I_i (w_i − c_{A_i})² exactly (Cor. 2's objective).

    Args:
        w, I: weights and importances (n,), I >= 0 (None: ones). k: 1 <= k <= distinct weights.
        exact_limit: run the exact DP when k · (number of distinct weights) <= exact_limit
            (memory k·m int32 for the back-pointers); None: always exact.
        bins: above the limit, the DP runs over this many groups of distinct weights, then up to
            ``polish_iter`` Lloyd steps refine it (never worse than the histogram DP).
    The result's ``objective`` is never above weighted Lloyd's from any start when exact.
    """
    w, I, _ = prepare(w, I, None, k)
    if bins < 1 or polish_iter < 0:
        raise ConfigError(f"bins={bins} must be >= 1 and polish_iter={polish_iter} >= 0.")
    layer = SortedLayer(w, I)
    # pos (m + 1,): sorted position where each distinct value starts, plus n.
    pos = np.flatnonzero(np.r_[True, layer.w[1:] != layer.w[:-1], True])
    m = pos.size - 1
    exact = exact_limit is None or k * m <= exact_limit or m <= max(bins, k)
    units = pos if exact else _histogram_units(pos, max(bins, k))

    bounds = _partition_dp(lambda t, i: layer.quadratic_cost(units[t], units[i]), units.size - 1, k)
    edges = units[bounds]  # (k + 1,) sorted positions
    codebook = layer.centroids(edges, np.zeros(k))
    if exact:
        labels = layer.assignments(edges)
        objective = distortion(w, I, None, codebook[labels])
        return QuantizationResult(codebook=codebook, assignments=labels, objective=objective)
    return lloyd_from(w, I, None, codebook, max_iter=polish_iter, tol=0.0, layer=layer)


def _histogram_units(pos: np.ndarray, bins: int) -> np.ndarray:
    """About ``bins`` groups of consecutive distinct values with equal weight counts: (B + 1,)."""
    targets = np.linspace(0, pos[-1], bins + 1)
    idx = np.unique(np.clip(np.searchsorted(pos, targets), 0, pos.size - 1))
    return pos[np.unique(np.r_[0, idx, pos.size - 1])]


def _partition_dp(cost, M: int, k: int) -> np.ndarray:
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
        prev, back[j - 2] = _dc_row(prev, cost, lo=j, hi=M, opt_lo=j - 1)
    bounds = np.empty(k + 1, dtype=np.int64)
    bounds[0], bounds[k] = 0, M
    if k > 1:  # last row: only i = M is needed
        t = np.arange(k - 1, M)
        bounds[k - 1] = t[np.argmin(prev[t] + cost(t, np.full_like(t, M)))]
        for j in range(k - 1, 1, -1):
            bounds[j - 1] = back[j - 2, bounds[j]]
    return bounds


def _dc_row(prev: np.ndarray, cost, lo: int, hi: int, opt_lo: int):
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
        best = t[hit[np.r_[True, hit_seg[1:] != hit_seg[:-1]]]]  # smallest argmin per segment
        cur[mid], arg[mid] = vmin, best
        left, right = L < mid, mid < R
        L, R = np.r_[L[left], mid[right] + 1], np.r_[mid[left] - 1, R[right]]
        OL, OR = np.r_[OL[left], best[right]], np.r_[best[left], OR[right]]
    return cur, arg
