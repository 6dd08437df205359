"""The fast path of ``optimal_quantize`` for large layers: an exact DP over a fine histogram,
then exact Lloyd steps that touch only the few weights near cluster edges. No full sort.

1. Cells: weight w falls in cell ⌊(w − min w) · s⌋ of ``bins`` equal cells, s = (bins − ½) /
   (max w − min w). Every moment of the objective (Σ 1, w, I, I w, I w², and H, H w, ..., H w⁴
   for the quartic term) is summed per cell by ``np.bincount``: O(n) passes, no sort.
2. DP: ``partition_dp`` over the non-empty cells (a cell is never split) gives the optimal
   clustering whose edges lie on cell edges, exactly, from the cell sums.
3. Polish: Lloyd steps on all weights from the DP's centroids. The cell formula is monotone in
   w under rounding, so a cell lies wholly below (above) a midpoint when its index is below
   (above) the midpoint's own cell index; only the weights of the cells around the DP's edges
   ("window cells", W on each side) are handled one by one, sorted once (a few thousand).
   Each step is then O(k log n) from two prefix-sum tables (outside cells, window points).
   A midpoint that leaves the windows ends the polish; the last step's codebook is kept and
   the final assignment is done for every weight.
4. Assignment: a cell-to-cluster table gathered by cell index, the window points by
   ``searchsorted``; the objective is then evaluated directly.

Lloyd steps never raise J, so the result is never worse than the histogram DP's.
"""

from __future__ import annotations

import numpy as np

from rdcompress.quantize._common import QuantizationResult, distortion
from rdcompress.quantize._dp import partition_dp
from rdcompress.quantize.centroids import ClusterSums, point_moments, run_cost, update_centroids

WINDOW = 2  # cells on each side of a DP edge whose weights are handled one by one


def histogram_quantize(
    w: np.ndarray, I: np.ndarray, H: np.ndarray | None, k: int, bins: int, polish_iter: int
) -> QuantizationResult | None:
    """Fast near-optimal quantizer (see the module docstring); None when fewer than k cells
    are used (the caller falls back to the exact DP). Inputs validated, float64, (n,)."""
    low, high = float(w.min()), float(w.max())
    if not high > low:
        return None
    scale = (bins - 0.5) / (high - low)  # keeps the top cell index at bins − 1 despite rounding
    # Only two (n,) arrays live through the call: every fresh large array costs page faults
    # (several ms per 8 MB on some machines), more than the arithmetic. ``cell`` later becomes
    # the assignments, ``scratch`` holds each moment product in turn, then ŵ.
    scratch = np.empty_like(w)  # (n,) float64
    cell = np.empty(w.size, dtype=np.intp)  # (n,) in [0, bins)
    np.copyto(cell, _scaled(w, low, scale, scratch), casting="unsafe")  # = .astype(np.intp)
    shift = float(w.mean())  # moments are of w − shift, for conditioning
    binned = _binned_moments(cell, w, shift, I, H, bins, scratch)  # (F, bins)
    used = np.flatnonzero(binned[0])  # (M,) non-empty cells
    if used.size < k:
        return None
    prefix = _prefix(binned[:, used])  # (F, M + 1)
    quadratic = H is None

    def cost(t: np.ndarray, i: np.ndarray) -> np.ndarray:
        if quadratic:  # Σ I w² − (Σ I w)² / Σ I, cheaper than the general form
            s0, s1, s2 = (prefix[row, i] - prefix[row, t] for row in (2, 3, 4))
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.maximum(np.where(s0 > 0, s2 - s1 * s1 / s0, 0.0), 0.0)
        return run_cost(ClusterSums.from_rows(prefix[:, i] - prefix[:, t]))[1]

    bounds = partition_dp(cost, used.size, k)  # (k + 1,) runs of used cells
    sums = ClusterSums.from_rows(prefix[:, bounds[1:]] - prefix[:, bounds[:-1]])
    codebook = np.sort(update_centroids(sums, np.zeros(k)) + shift)  # (k,) original coords

    # Window cells: around each DP edge, plus every empty cell (they hold no weights).
    window = binned[0] == 0  # (bins,)
    for lo, hi in zip(used[bounds[1:-1] - 1], used[bounds[1:-1]], strict=True):
        window[max(lo - WINDOW + 1, 0) : hi + WINDOW] = True
    picked = np.flatnonzero(window[cell])  # (P,) weights in window cells
    picked = picked[np.argsort(w[picked], kind="stable")]  # sorted by value
    window_w = w[picked]  # (P,) ascending, original coords
    window_prefix = _prefix(np.stack(list(point_moments(
        window_w - shift, I[picked], None if H is None else H[picked]))))  # (F, P + 1)
    outside_prefix = _prefix(np.where(window, 0.0, binned))  # (F, bins + 1)

    iterations, state = 0, None
    while True:
        mids = 0.5 * (codebook[:-1] + codebook[1:])  # (k − 1,) original coords
        mid_cell = np.clip(_cells(mids, low, scale), 0, bins - 1)
        if not np.all(window[mid_cell]):
            break  # a midpoint left the windows: assign every weight below
        point_edge = np.searchsorted(window_w, mids, side="left")  # (k − 1,)
        new_state = np.concatenate((mid_cell, point_edge))
        if state is not None and np.array_equal(state, new_state):
            break  # assignments unchanged: a Lloyd fixed point
        state = new_state
        if iterations == polish_iter:
            break
        iterations += 1
        cell_edges = np.concatenate(([0], mid_cell, [bins]))  # cluster j: cells [e_j, e_{j+1})
        point_edges = np.concatenate(([0], point_edge, [window_w.size]))
        rows = (outside_prefix[:, cell_edges[1:]] - outside_prefix[:, cell_edges[:-1]]
                + window_prefix[:, point_edges[1:]] - window_prefix[:, point_edges[:-1]])
        codebook = np.sort(update_centroids(ClusterSums.from_rows(rows), codebook - shift)
                           + shift)

    assignments = _assign(w, cell, codebook, low, scale, bins, window, picked)  # reuses cell
    w_hat = np.take(codebook, assignments, out=scratch, mode="clip")  # "raise" would buffer
    return QuantizationResult(
        codebook=codebook, assignments=assignments,
        objective=distortion(w, I, H, w_hat, out=scratch), iterations=iterations,
    )


def _assign(w, cell, codebook, low, scale, bins, window, picked) -> np.ndarray:
    """Nearest centroid of every weight (n,), a weight on a midpoint going up.

    Outside the windows a whole cell takes one label (the number of midpoint cells below it);
    window weights are compared one by one. A midpoint outside the windows forces the plain
    ``searchsorted`` over all weights. ``cell`` (n,) intp is overwritten with the result.
    """
    mids = 0.5 * (codebook[:-1] + codebook[1:])  # (k − 1,)
    mid_cell = np.clip(_cells(mids, low, scale), 0, bins - 1)
    if not np.all(window[mid_cell]):
        cell[:] = np.searchsorted(mids, w, side="right")
        return cell
    cell_label = np.searchsorted(mid_cell, np.arange(bins), side="left")  # (bins,)
    assignments = np.take(cell_label, cell, out=cell, mode="clip")  # (n,) int64, in place
    assignments[picked] = np.searchsorted(mids, w[picked], side="right")
    return assignments


def _scaled(w: np.ndarray, low: float, scale: float, out: np.ndarray | None = None):
    """(w − low) · scale, whose truncation is the cell index: monotone in w under rounding."""
    buffer = np.subtract(w, low, out=out)
    return np.multiply(buffer, scale, out=buffer)


def _cells(values: np.ndarray, low: float, scale: float) -> np.ndarray:
    """Cell index of a few values (the midpoints): the very same floating-point operations as
    for the weights, so that comparisons of cell indices agree with comparisons of values."""
    return _scaled(values, low, scale).astype(np.intp)


def _binned_moments(cell, w, shift: float, I, H, bins: int, buffer: np.ndarray) -> np.ndarray:
    """Per-cell sums (F, bins) of the QUADRATIC/QUARTIC_FIELDS moments of wc = w − shift.

    Each moment is rebuilt from w in ``buffer`` (n,) and reduced before the next, so the
    quadratic case allocates no (n,) array; the quartic one keeps wc in a second buffer.
    """
    rows: list[np.ndarray] = [np.bincount(cell, minlength=bins).astype(np.float64)]
    wc = np.subtract(w, shift, out=buffer)
    rows += [np.bincount(cell, wc, bins), np.bincount(cell, I, bins)]
    rows.append(np.bincount(cell, np.multiply(wc, I, out=buffer), bins))  # I w
    np.subtract(w, shift, out=buffer)
    np.square(buffer, out=buffer)
    rows.append(np.bincount(cell, np.multiply(buffer, I, out=buffer), bins))  # I w²
    if H is not None:
        wc = w - shift  # (n,)
        rows.append(np.bincount(cell, H, bins))
        np.multiply(H, wc, out=buffer)
        rows.append(np.bincount(cell, buffer, bins))  # H w
        for _ in range(3):  # H w², H w³, H w⁴
            rows.append(np.bincount(cell, np.multiply(buffer, wc, out=buffer), bins))
    return np.stack(rows)


def _prefix(rows: np.ndarray) -> np.ndarray:
    """(F, m) -> (F, m + 1) running sums along the last axis, with a leading zero column."""
    out = np.zeros((rows.shape[0], rows.shape[1] + 1))
    np.cumsum(rows, axis=1, out=out[:, 1:])
    return out
