"""Globally optimal weighted 1-D quantization by dynamic programming over sorted weights.

Objective (paper §5.3 Cor. 2; App. C.2 with the 1/4 folded into H):

    J(c, A) = Σ_i I_i (w_i − c_{A_i})² + H_i (w_i − c_{A_i})⁴,      I, H >= 0.

The cost of giving w_i the centroid c grows with |w_i − c| (both terms are convex, even, and
minimal at 0), so for any codebook the nearest centroid is an optimal assignment, and an
optimal quantizer's clusters are contiguous runs of the sorted DISTINCT weights (equal weights
together; ``tests/quantize/test_quantize_optimal_quartic.py`` checks this by brute force over
every labeling). A run's optimal cost is O(1) from prefix sums of the moments:

    H = 0:  cost(t, i) = Σ I w² − (Σ I w)² / Σ I                                         (§5.3)
    H ≠ 0:  c* = the single real root of App. C.2's cubic (Algorithm 2's centroid step), from
            Σ I, Σ I w, Σ H, Σ H w, Σ H w², Σ H w³; the cost Σ I (w − c*)² + H (w − c*)⁴
            expands into those and Σ I w², Σ H w⁴                      (``centroids.run_cost``)

and   D_j(i) = min_{t<i} D_{j−1}(t) + cost(t, i),   D_1(i) = cost(0, i),   answer D_k(m),
filled row by row by divide and conquer (``_dp.partition_dp``): O(k·m·log m).

For layers where k·n is large the same DP runs over ``bins`` equal-width cells (a fine
histogram, no sort), and exact Lloyd steps polish it (``histogram.histogram_quantize``); both
only lower J. ``bench/quantize.py`` measures the gap to the exact optimum.

With H, the final centroids are recomputed once in each cluster's own frame
(``centroids.refine_centroids``): prefix sums about the layer's mean lose digits for clusters
far from it, which the DP's comparisons tolerate but the stored codebook should not.
"""

from __future__ import annotations

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.quantize._common import (
    QuantizationResult,
    check_k,
    check_k_value,
    distortion,
    prepare,
)
from rdcompress.quantize._dp import partition_dp
from rdcompress.quantize.centroids import refine_centroids
from rdcompress.quantize.histogram import histogram_quantize
from rdcompress.quantize.sorted_layer import SortedLayer

QUARTIC_COST_FACTOR = 8  # measured: the exact quartic DP is ~3-8x slower than the quadratic one


def optimal_quantize(
    w, I=None, k: int = 16, H=None, *, exact_limit: int | None = 1 << 21, bins: int = 8192,
    polish_iter: int = 100,
) -> QuantizationResult:
    """The k-centroid quantizer minimizing Σ I_i (w_i − c_{A_i})² + H_i (w_i − c_{A_i})⁴.

    Args:
        w, I, H: weights, importances and quartic importances (n,), I, H >= 0 (I None: ones;
            H None or all zero: the quadratic objective of Cor. 2).
        k: 1 <= k <= number of distinct weights.
        exact_limit: run the exact DP when k · n <= exact_limit (its time and the k·m int32
            back-pointers grow with it); with H, k · n · QUARTIC_COST_FACTOR <= exact_limit (a
            quartic run's cost needs a cubic's root: about that many times dearer). None: always
            exact.
        bins: above the limit, the fast path: the DP runs exactly over ``bins`` equal-width
            cells of [min w, max w] (cell sums of the moments make each run's cost exact; only
            a cell cannot be split), then up to ``polish_iter`` Lloyd steps on all weights.
            No sort: O(n) passes plus a DP over the cells. Never worse than that histogram DP.
    When exact, the result's ``objective`` is never above (quartic) Lloyd's from any start.
    """
    w, I, H = prepare(w, I, H)
    check_k_value(k)
    if bins < 1 or polish_iter < 0:
        raise ConfigError(f"bins={bins} must be >= 1 and polish_iter={polish_iter} >= 0.")
    work = k * w.size * (1 if H is None else QUARTIC_COST_FACTOR)
    if not (exact_limit is None or work <= exact_limit or w.size <= max(bins, k)):
        fast = histogram_quantize(w, I, H, k, max(bins, k), polish_iter)
        if fast is not None:
            return _refined(w, I, H, fast)
    check_k(w, k)
    layer = SortedLayer(w, I, H)
    # units (m + 1,): sorted position where each distinct value starts, plus n.
    units = np.flatnonzero(np.r_[True, layer.w[1:] != layer.w[:-1], True])
    bounds = partition_dp(lambda t, i: layer.run_cost(units[t], units[i]), units.size - 1, k)
    edges = units[bounds]  # (k + 1,) sorted positions
    codebook = layer.centroids(edges, np.zeros(k))
    labels = layer.assignments(edges)
    objective = distortion(w, I, H, codebook[labels])
    return _refined(w, I, H, QuantizationResult(codebook, labels, objective))


def _refined(w, I, H, result: QuantizationResult) -> QuantizationResult:
    """Quartic centroids recomputed in each cluster's own frame (``refine_centroids``); kept
    only if J does not rise (it can only fall, up to rounding)."""
    if H is None:
        return result  # the weighted mean loses no digits to a far-off origin
    codebook = refine_centroids(w, I, H, result.assignments, result.codebook)  # (k,) ascending
    objective = distortion(w, I, H, codebook[result.assignments])
    if not objective <= result.objective:
        return result
    return QuantizationResult(codebook, result.assignments, objective, result.iterations,
                              result.converged)
