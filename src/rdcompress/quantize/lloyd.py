"""Weighted Lloyd k-means (Choi et al. 2016; the paper's §6 quantizer) on one layer.

Minimizes J(c, A) = Σ_i I_i (w_i − c_{A_i})² (+ H_i (w_i − c_{A_i})⁴, App. C.2) by alternating
the assignment step (nearest centroid, optimal since the cost grows with |w − c|) and the update
step (``centroids.update_centroids``). Both run on sorted weights with prefix sums, so after
one O(n log n) sort each iteration costs O(k log n) (see ``sorted_layer``). J never increases.
"""

from __future__ import annotations

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.quantize._common import QuantizationResult, distortion, prepare
from rdcompress.quantize.sorted_layer import SortedLayer

INITS = ("quantile", "uniform", "random")


def weighted_lloyd(
    w, I=None, k: int = 16, *, init="quantile", max_iter: int = 300, tol: float = 0.0,
    seed: int = 0,
) -> QuantizationResult:
    """Weighted k-means of a 1-D layer: min Σ I_i (w_i − c_{A_i})² (paper §5.3, Cor. 2).

    Args:
        w: weights (n,), numpy or torch. I: importances (n,) >= 0; None means ones (baseline).
        k: number of centroids, 1 <= k <= number of distinct weights.
        init: "quantile" (the paper's: c_j = quantile (j + ½)/k of w), "uniform" (evenly
            spaced on [min w, max w], Deep Compression's linear init), "random" (k distinct
            weights drawn with ``seed``), or an explicit initial codebook (k,).
        max_iter: at most this many update steps. tol: stop once no centroid moves more than
            tol · (max w − min w); 0 runs until the assignments stop changing.
    """
    w, I, _ = prepare(w, I, None, k)
    return lloyd_from(w, I, None, init_codebook(w, k, init, seed), max_iter=max_iter, tol=tol)


def lloyd_from(
    w: np.ndarray, I: np.ndarray, H: np.ndarray | None, codebook: np.ndarray, *,
    max_iter: int, tol: float, layer: SortedLayer | None = None,
) -> QuantizationResult:
    """Lloyd iterations from ``codebook`` on validated inputs (no checks; shared engine)."""
    if max_iter < 0 or tol < 0:
        raise ConfigError(f"max_iter={max_iter} and tol={tol} must both be >= 0.")
    layer = layer if layer is not None else SortedLayer(w, I, H)
    span = float(layer.w[-1] - layer.w[0])
    c = np.sort(np.asarray(codebook, dtype=np.float64))
    edges = layer.edges(c)
    iterations, converged = 0, max_iter == 0
    while iterations < max_iter:
        iterations += 1
        new_c = np.sort(layer.centroids(edges, c))
        new_edges = layer.edges(new_c)
        if np.any(new_edges[1:] == new_edges[:-1]):
            new_c, new_edges = _relocate_empty(layer, new_c, new_edges)
        moved = float(np.max(np.abs(new_c - c)))
        c = new_c
        if np.array_equal(new_edges, edges) or moved <= tol * span:
            edges, converged = new_edges, True
            break
        edges = new_edges
    labels = layer.assignments(edges)
    return QuantizationResult(
        codebook=c, assignments=labels, objective=distortion(w, I, H, c[labels]),
        iterations=iterations, converged=converged,
    )


def _relocate_empty(layer: SortedLayer, c: np.ndarray, edges: np.ndarray):
    """Move centroids of empty clusters onto the weights of largest error I (w − c)².

    As in scikit-learn's k-means; it cannot raise J: the moved centroid sits on a weight whose
    cost drops to 0, and every other weight keeps a centroid at least as near.
    """
    k = c.size
    empty = np.flatnonzero(edges[1:] == edges[:-1])
    labels = np.repeat(np.arange(k), np.diff(edges))  # (n,) sorted order
    error = layer.I * np.square(layer.w - c[labels])
    taken, picked = set(c.tolist()), list[float]()
    for index in np.argsort(error, kind="stable")[::-1]:
        if len(picked) == empty.size or error[index] <= 0:
            break
        value = float(layer.w[index])
        if value not in taken:
            taken.add(value)
            picked.append(value)
    c = c.copy()
    c[empty[: len(picked)]] = picked
    c = np.sort(c)
    return c, layer.edges(c)


def init_codebook(w: np.ndarray, k: int, init, seed: int = 0) -> np.ndarray:
    """Initial codebook (k,), ascending. Falls back to distinct weights when quantiles collide."""
    if not isinstance(init, str):
        codebook = np.sort(np.asarray(init, dtype=np.float64).reshape(-1))
        if codebook.size != k or not np.all(np.isfinite(codebook)):
            raise ConfigError(
                f"init codebook has {codebook.size} entries (finite: "
                f"{bool(np.all(np.isfinite(codebook)))}); expected {k} finite values."
            )
        return codebook
    if init == "quantile":
        codebook = np.quantile(w, (np.arange(k) + 0.5) / k)
    elif init == "uniform":
        codebook = np.linspace(w.min(), w.max(), k) if k > 1 else np.array([w.mean()])
    elif init == "random":
        distinct = np.unique(w)
        codebook = np.random.default_rng(seed).choice(distinct, size=k, replace=False)
    else:
        raise ConfigError(f"init={init!r} is unknown; use one of {INITS} or a codebook array.")
    codebook = np.sort(codebook)
    if np.unique(codebook).size < k:  # many equal weights: spread over the distinct values
        distinct = np.unique(w)
        codebook = distinct[np.round(np.linspace(0, distinct.size - 1, k)).astype(np.int64)]
    return codebook
