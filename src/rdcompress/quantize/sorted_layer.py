"""One layer's weights sorted once, with prefix sums, so a Lloyd step costs O(k log n).

With non-negative importances the per-weight cost I_i (w_i − c)² + H_i (w_i − c)⁴ grows with
|w_i − c|, so the optimal assignment for a fixed codebook is the nearest centroid and every
cluster is a contiguous run of the sorted weights, delimited by the midpoints between
consecutive centroids. A cluster's moments are then differences of prefix sums, and both Lloyd
steps touch only k + 1 edges: ``searchsorted`` for the assignment, O(1) sums for the update.
"""

from __future__ import annotations

import numpy as np

from rdcompress.quantize.centroids import ClusterSums, update_centroids


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
        wc = self.w - self.shift  # (n,) centred
        Is = I[self.order]
        self.I = Is  # (n,) importances in sorted order

        def prefix(values: np.ndarray) -> np.ndarray:  # (n + 1,), leading zero
            out = np.empty(values.size + 1)
            out[0] = 0.0
            np.cumsum(values, out=out[1:])
            return out

        self._w, self._I, self._Iw = prefix(wc), prefix(Is), prefix(Is * wc)
        self._Iw2 = prefix(Is * wc * wc)
        self.has_quartic = H is not None
        if H is not None:
            hs = H[self.order]
            self._H, self._Hw = prefix(hs), prefix(hs * wc)
            self._Hw2, self._Hw3 = prefix(hs * wc**2), prefix(hs * wc**3)

    def edges(self, codebook: np.ndarray) -> np.ndarray:
        """Cluster edges (k + 1,) for an ascending codebook (k,): cluster j is w[e_j:e_{j+1}].

        A weight exactly on a midpoint goes to the upper cluster (equal cost either way).
        """
        mid = 0.5 * (codebook[:-1] + codebook[1:])  # (k − 1,)
        return np.concatenate(([0], np.searchsorted(self.w, mid, side="left"), [self.n]))

    def sums(self, edges: np.ndarray) -> ClusterSums:
        lo, hi = edges[:-1], edges[1:]
        sums = ClusterSums(
            count=(hi - lo).astype(np.float64), w=self._w[hi] - self._w[lo],
            I=self._I[hi] - self._I[lo], Iw=self._Iw[hi] - self._Iw[lo],
        )
        if self.has_quartic:
            sums.H, sums.Hw = self._H[hi] - self._H[lo], self._Hw[hi] - self._Hw[lo]
            sums.Hw2, sums.Hw3 = self._Hw2[hi] - self._Hw2[lo], self._Hw3[hi] - self._Hw3[lo]
        return sums

    def centroids(self, edges: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """The update step: optimal centroid of each contiguous cluster, (k,), original coords."""
        return update_centroids(self.sums(edges), previous - self.shift) + self.shift

    def quadratic_cost(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """min_c Σ_{i∈[lo,hi)} I_i (w_i − c)² = S_Iw² − S_Iw²/S_I (0 when S_I = 0), elementwise."""
        s0 = self._I[hi] - self._I[lo]
        s1 = self._Iw[hi] - self._Iw[lo]
        s2 = self._Iw2[hi] - self._Iw2[lo]
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = np.where(s0 > 0, s2 - s1 * s1 / s0, 0.0)
        return np.maximum(cost, 0.0)

    def assignments(self, edges: np.ndarray) -> np.ndarray:
        """Cluster index per weight (n,), int64, in the ORIGINAL order of w."""
        sorted_labels = np.repeat(np.arange(edges.size - 1), np.diff(edges))
        labels = np.empty(self.n, dtype=np.int64)
        labels[self.order] = sorted_labels
        return labels
