"""One layer's weights sorted once, with prefix sums, so a Lloyd step costs O(k log n).

With non-negative importances the per-weight cost I_i (w_i − c)² + H_i (w_i − c)⁴ grows with
|w_i − c|, so the optimal assignment for a fixed codebook is the nearest centroid and every
cluster is a contiguous run of the sorted weights, delimited by the midpoints between
consecutive centroids. A cluster's moments are then differences of prefix sums, and both Lloyd
steps touch only k + 1 edges: ``searchsorted`` for the assignment, O(1) sums for the update.
"""

from __future__ import annotations

import numpy as np

from rdcompress.quantize.centroids import (
    QUADRATIC_FIELDS,
    QUARTIC_FIELDS,
    ClusterSums,
    point_moments,
    run_cost,
    update_centroids,
)


class SortedLayer:
    """Sorted weights ``w`` (n,) and prefix moments, in coordinates centred on the mean of w.

    Centring keeps the raw-moment formulas (Σ I w², Σ H w³, ...) away from cancellation.
    Callers pass validated float64 arrays (see ``_common.prepare``); nothing is checked here.
    """

    def __init__(self, w: np.ndarray, I: np.ndarray, H: np.ndarray | None = None):
        self.order = np.argsort(w, kind="stable")  # (n,) sorted position -> original index
        self.w = w[self.order]  # (n,) ascending, original coordinates
        self.shift = float(self.w.mean())
        self.n = self.w.size
        self.I = I[self.order]  # (n,) importances in sorted order
        self.has_quartic = H is not None
        moments = point_moments(self.w - self.shift, self.I, None if H is None else H[self.order])
        fields = QUARTIC_FIELDS if self.has_quartic else QUADRATIC_FIELDS
        # (F, n + 1) prefix sums with a leading zero column, F = len(fields).
        self._prefix = np.zeros((len(fields), self.n + 1))
        for row, values in enumerate(moments):
            np.cumsum(values, out=self._prefix[row, 1:])

    def edges(self, codebook: np.ndarray) -> np.ndarray:
        """Cluster edges (k + 1,) for an ascending codebook (k,): cluster j is w[e_j:e_{j+1}].

        A weight exactly on a midpoint goes to the upper cluster (equal cost either way).
        """
        mid = 0.5 * (codebook[:-1] + codebook[1:])  # (k − 1,)
        return np.concatenate(([0], np.searchsorted(self.w, mid, side="left"), [self.n]))

    def sums(self, edges: np.ndarray) -> ClusterSums:
        """Moments of the clusters w[e_j:e_{j+1}], each (k,), centred coordinates."""
        return self.sums_between(edges[:-1], edges[1:])

    def sums_between(self, lo: np.ndarray, hi: np.ndarray) -> ClusterSums:
        """Moments of the runs w[lo:hi] (elementwise over index arrays), centred coordinates."""
        return ClusterSums.from_rows(self._prefix[:, hi] - self._prefix[:, lo])

    def centroids(self, edges: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """The update step: optimal centroid of each contiguous cluster, (k,), original coords."""
        return update_centroids(self.sums(edges), previous - self.shift) + self.shift

    def quadratic_cost(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """min_c Σ_{i∈[lo,hi)} I_i (w_i − c)² = S_Iw² − S_Iw²/S_I (0 when S_I = 0), elementwise."""
        P = self._prefix
        s0, s1, s2 = (P[row, hi] - P[row, lo] for row in (2, 3, 4))  # Σ I, Σ I w, Σ I w²
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = np.where(s0 > 0, s2 - s1 * s1 / s0, 0.0)
        return np.maximum(cost, 0.0)

    def run_cost(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """min_c Σ_{i∈[lo,hi)} I_i (w_i − c)² + H_i (w_i − c)⁴, elementwise (``run_cost``)."""
        if not self.has_quartic:
            return self.quadratic_cost(lo, hi)
        return run_cost(self.sums_between(lo, hi))[1]

    def assignments(self, edges: np.ndarray) -> np.ndarray:
        """Cluster index per weight (n,), int64, in the ORIGINAL order of w."""
        sorted_labels = np.repeat(np.arange(edges.size - 1), np.diff(edges))
        labels = np.empty(self.n, dtype=np.int64)
        labels[self.order] = sorted_labels
        return labels
