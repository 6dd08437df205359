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

For layers where k·n is large the same DP runs over ``bins`` equal-width cells (a fine
histogram, no sort), and Lloyd steps from its centroids polish the result; both only lower J.
``bench/quantize.py`` measures the gap to the exact optimum.
"""

from __future__ import annotations

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.quantize._common import QuantizationResult, distortion, prepare
from rdcompress.quantize.centroids import ClusterSums, cluster_sums, update_centroids
from rdcompress.quantize.sorted_layer import SortedLayer


def optimal_quantize(
    w, I=None, k: int = 16, *, exact_limit: int | None = 1 << 21, bins: int = 8192,
    polish_iter: int = 20,
) -> QuantizationResult:
    """The k-centroid quantizer minimizing Σ I_i (w_i − c_{A_i})² exactly (Cor. 2's objective).

    Args:
        w, I: weights and importances (n,), I >= 0 (None: ones). k: 1 <= k <= distinct weights.
        exact_limit: run the exact DP when k · n <= exact_limit (its time and the k·m int32
            back-pointers grow with it); None: always exact.
        bins: above the limit, the fast path: the DP runs exactly over ``bins`` equal-width
            cells of [min w, max w] (cell sums of I, I·w, I·w² make each run's cost exact; only
            a cell cannot be split), then up to ``polish_iter`` Lloyd steps on all weights.
            No sort: O(n) passes plus a DP over the cells. Never worse than that histogram DP.
    The result's ``objective`` is never above weighted Lloyd's from any start when exact.
    """
    w, I, _ = prepare(w, I, None, k)
    if bins < 1 or polish_iter < 0:
        raise ConfigError(f"bins={bins} must be >= 1 and polish_iter={polish_iter} >= 0.")
    if not (exact_limit is None or k * w.size <= exact_limit or w.size <= max(bins, k)):
        fast = _histogram_quantize(w, I, k, max(bins, k), polish_iter)
        if fast is not None:
            return fast
    layer = SortedLayer(w, I)
    # units (m + 1,): sorted position where each distinct value starts, plus n.
    units = np.flatnonzero(np.r_[True, layer.w[1:] != layer.w[:-1], True])
    bounds = _partition_dp(lambda t, i: layer.quadratic_cost(units[t], units[i]), units.size - 1, k)
    edges = units[bounds]  # (k + 1,) sorted positions
    codebook = layer.centroids(edges, np.zeros(k))
    labels = layer.assignments(edges)
    objective = distortion(w, I, None, codebook[labels])
    return QuantizationResult(codebook=codebook, assignments=labels, objective=objective)


def _histogram_quantize(w: np.ndarray, I: np.ndarray, k: int, bins: int, polish_iter: int):
    """Fast path: exact DP over equal-width cells, then Lloyd polish; None if < k cells used."""
    low, high = float(w.min()), float(w.max())
    shift = float(w.mean())
    width = (high - low) / bins
    cell = np.minimum(((w - low) / width).astype(np.int64), bins - 1)  # (n,)
    count = np.bincount(cell, minlength=bins)
    used = np.flatnonzero(count)  # (M,) non-empty cells
    if used.size < k:
        return None
    # Points grouped by cell (a radix sort of small integers): a cell's points are contiguous.
    order = np.argsort(cell.astype(np.uint16) if bins <= 1 << 16 else cell, kind="stable")
    wc, Ic = w[order] - shift, I[order]  # (n,) centred weights and importances, by cell
    starts = np.r_[0, np.cumsum(count[used])]  # (M + 1,) point ranges of the used cells
    sums = [np.add.reduceat(v, starts[:-1]) for v in (np.ones_like(wc), wc, Ic, Ic * wc)]
    cell_sums = ClusterSums(*sums)  # each (M,)
    s2 = np.add.reduceat(Ic * wc * wc, starts[:-1])
    P0, P1, P2 = (np.r_[0.0, np.cumsum(v)] for v in (cell_sums.I, cell_sums.Iw, s2))

    def cost(t, i):
        s0, s1, sq = P0[i] - P0[t], P1[i] - P1[t], P2[i] - P2[t]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.maximum(np.where(s0 > 0, sq - s1 * s1 / s0, 0.0), 0.0)

    bounds = _partition_dp(cost, used.size, k)  # (k + 1,) runs of cells
    run = np.repeat(np.arange(k), np.diff(bounds))  # (M,) cluster of each cell
    codebook = update_centroids(_sum_by(cell_sums, run, k), np.zeros(k))  # (k,) centred
    # Lloyd polish. A cell whose span holds no midpoint goes whole to one cluster, so only the
    # points of the <= 2(k − 1) cells next to a midpoint are assigned one by one.
    cell_lo = low - shift + used * width  # (M,) nominal span, widened by a safety margin
    margin = 1e-6 * width
    labels = None
    iterations = 0
    while True:
        mids = 0.5 * (codebook[:-1] + codebook[1:])
        lab_lo = np.searchsorted(mids, cell_lo - margin, side="right")  # (M,)
        split = lab_lo != np.searchsorted(mids, cell_lo + width + margin, side="right")
        points = _ranges(starts, np.flatnonzero(split))  # indices into the by-cell order
        point_labels = np.searchsorted(mids, wc[points], side="right")
        new = (lab_lo, split, points, point_labels)
        if labels is not None and _same(labels, new):
            break
        labels = new
        if iterations == polish_iter:
            break
        iterations += 1
        whole = ~split
        cluster = _sum_by(cell_sums, np.where(whole, lab_lo, k), k + 1, whole)
        single = cluster_sums(wc[points], Ic[points], None, point_labels, k + 1)
        merged = ClusterSums(*(getattr(cluster, f) + getattr(single, f)
                               for f in ("count", "w", "I", "Iw")))
        codebook = np.sort(update_centroids(merged, np.r_[codebook, 0.0])[:k])
    lab_lo, split, points, point_labels = labels
    by_cell = np.repeat(np.where(split, 0, lab_lo), np.diff(starts))  # (n,) by-cell order
    by_cell[points] = point_labels
    assignments = np.empty(w.size, dtype=np.int64)
    assignments[order] = by_cell
    codebook = codebook + shift
    return QuantizationResult(
        codebook=codebook, assignments=assignments,
        objective=distortion(w, I, None, codebook[assignments]), iterations=iterations,
    )


def _sum_by(sums: ClusterSums, group: np.ndarray, size: int, keep=None) -> ClusterSums:
    """Per-cell sums (M,) added up per group id (M,) -> (size,); ``keep`` masks cells."""
    weights = (None if keep is None else keep.astype(np.float64))

    def total(values):
        return np.bincount(group, values if weights is None else values * weights, size)

    return ClusterSums(total(sums.count), total(sums.w), total(sums.I), total(sums.Iw))


def _ranges(starts: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Concatenated index ranges [starts[c], starts[c + 1]) of the given cells."""
    lengths = starts[cells + 1] - starts[cells]
    offsets = np.cumsum(lengths) - lengths
    return np.arange(int(lengths.sum())) - np.repeat(offsets - starts[cells], lengths)


def _same(old, new) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(old, new, strict=True))


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
