"""Quartic weighted k-means: the paper's Algorithm 2 (App. C.2), for the gradient+hessian
objective Σ_i I_i (w_i − c_{A_i})² + H_i (w_i − c_{A_i})⁴ with H = E[(∂²L/∂w²)²]/4 (Table 2).

Assignment: nearest centroid (the cost grows with |w − c|, as in Algorithm 2). Update: the single
real root of the cubic ∂J/∂c_j = 0 (``centroids.quartic_root``). J never increases.
"""

from __future__ import annotations

from rdcompress.quantize._common import QuantizationResult, prepare
from rdcompress.quantize.lloyd import init_codebook, lloyd_from


def quartic_kmeans(
    w, I=None, H=None, k: int = 16, *, init="quantile", max_iter: int = 300, tol: float = 0.0,
    seed: int = 0,
) -> QuantizationResult:
    """Algorithm 2 of the paper. w, I, H: (n,) with I, H >= 0 (None: I = 1, H = 0).

    With H = 0 (or None) this is exactly ``weighted_lloyd``. Arguments as in ``weighted_lloyd``.
    """
    w, I, H = prepare(w, I, H, k)
    return lloyd_from(w, I, H, init_codebook(w, k, init, seed), max_iter=max_iter, tol=tol)
