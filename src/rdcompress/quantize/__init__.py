"""Importance-weighted scalar quantizers of one layer (pure functions over 1-D arrays).

All minimize Σ_i I_i (w_i − c_{A_i})² (+ H_i (w_i − c_{A_i})⁴) over a codebook c and assignments A:

* ``weighted_lloyd``   — weighted k-means, quantile init (the paper's §6 quantizer);
* ``quartic_kmeans``   — Algorithm 2 (App. C.2), the gradient+hessian objective;
* ``optimal_quantize`` — the exact optimum by dynamic programming over sorted weights;
* ``entropy_constrained`` — ECSQ: distortion + λ · entropy-coded bits.
"""

from rdcompress.quantize._common import QuantizationResult
from rdcompress.quantize.entropy import entropy_constrained
from rdcompress.quantize.lloyd import weighted_lloyd
from rdcompress.quantize.optimal import optimal_quantize
from rdcompress.quantize.quartic import quartic_kmeans

__all__ = [
    "QuantizationResult",
    "entropy_constrained",
    "optimal_quantize",
    "quartic_kmeans",
    "weighted_lloyd",
]
