"""Entropy-constrained scalar quantization (ECSQ; Chou, Lookabaugh & Gray 1989, applied to
networks by Choi et al. 2016): the rate that matters is the entropy-coded one.

Minimizes the Lagrangian over codebook c, assignments A and code lengths ℓ:

    J_λ = Σ_i I_i (w_i − c_{A_i})² + H_i (w_i − c_{A_i})⁴  +  λ Σ_i ℓ_{A_i},   ℓ_j = −log2(n_j/n)

by alternating three exact minimizations, so J_λ never increases:
assignment A_i = argmin_j [cost_ij + λ ℓ_j] (no longer the nearest centroid: a weight with little
importance moves to a frequent, cheap-to-code cluster), the centroid update of
``centroids.update_centroids``, and ℓ_j = −log2 of the empirical frequencies (Gibbs' inequality).
Clusters that empty out die (ℓ = ∞), so the returned codebook may have fewer than k entries.
"""

from __future__ import annotations

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.quantize._common import QuantizationResult, distortion, prepare
from rdcompress.quantize.centroids import cluster_sums, update_centroids
from rdcompress.quantize.lloyd import init_codebook, lloyd_from

_CHUNK = 1 << 16  # weights per block of the (block, k) cost matrix


def entropy_constrained(
    w, I=None, k: int = 16, lam: float = 0.0, *, H=None, init="quantile", max_iter: int = 100,
    tol: float = 1e-9, seed: int = 0,
) -> QuantizationResult:
    """ECSQ of one layer with at most k centroids and rate weight ``lam`` (distortion per bit).

    Starts from weighted Lloyd's (quartic k-means' when H is given) solution from ``init``,
    which is already optimal for lam = 0, then runs the three-step descent on J_λ until it
    improves by less than tol · J_λ. Returns the used clusters only (ascending); ``objective`` is
    the distortion part, ``n · entropy_bits`` the rate part.
    """
    w, I, H = prepare(w, I, H, k)
    if not np.isfinite(lam) or lam < 0:
        raise ConfigError(f"lam={lam} must be a finite number >= 0 (distortion per bit).")
    start = lloyd_from(w, I, H, init_codebook(w, k, init, seed), max_iter=300, tol=0.0)
    codebook, labels = start.codebook, start.assignments
    if lam == 0:
        return _compact(w, I, H, codebook, labels, start.iterations, start.converged)
    n = w.size
    previous = np.inf
    iterations, converged = 0, False
    while iterations < max_iter:
        iterations += 1
        counts = np.bincount(labels, minlength=codebook.size)
        with np.errstate(divide="ignore"):
            code_length = -np.log2(counts / n)  # (k,), inf for dead clusters
        labels = _assign(w, I, H, codebook, lam * code_length)
        codebook = update_centroids(cluster_sums(w, I, H, labels, codebook.size), codebook)
        counts = np.bincount(labels, minlength=codebook.size)
        p = counts[counts > 0] / n
        value = distortion(w, I, H, codebook[labels]) - lam * n * float(np.dot(p, np.log2(p)))
        if previous - value <= tol * abs(value):
            converged = True
            break
        previous = value
    return _compact(w, I, H, codebook, labels, iterations, converged)


def _assign(w, I, H, codebook: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """argmin_j I_i (w_i − c_j)² + H_i (w_i − c_j)⁴ + rate_j, ties to the nearest centroid.

    Exact ties are the rule for weights with I_i = H_i = 0 (cost = rate only), so they go to the
    cheapest cluster, and among equally cheap ones to the nearest; w, I, H (n,), rate (k,).
    """
    labels = np.empty(w.size, dtype=np.int64)
    for lo in range(0, w.size, _CHUNK):
        block = slice(lo, lo + _CHUNK)
        diff2 = np.square(w[block, None] - codebook[None, :])  # (b, k)
        cost = I[block, None] * diff2
        if H is not None:
            cost += H[block, None] * np.square(diff2)
        cost += rate[None, :]
        tie = cost <= cost.min(axis=1, keepdims=True)
        labels[block] = np.argmin(np.where(tie, diff2, np.inf), axis=1)
    return labels


def _compact(w, I, H, codebook, labels, iterations, converged) -> QuantizationResult:
    """Drop unused centroids, sort the rest ascending, relabel."""
    used = np.unique(labels)
    order = used[np.argsort(codebook[used], kind="stable")]
    relabel = np.empty(codebook.size, dtype=np.int64)
    relabel[order] = np.arange(order.size)
    codebook, labels = codebook[order], relabel[labels]
    return QuantizationResult(
        codebook=codebook, assignments=labels, objective=distortion(w, I, H, codebook[labels]),
        iterations=iterations, converged=converged,
    )
