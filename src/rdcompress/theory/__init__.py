"""The paper's rate-distortion theory as runnable code (§3, §4, §5.1–5.3, App. A–B).

* ``gaussian``      — Example 1, R(D) of one Gaussian; units (bits by default, or nats).
* ``waterfilling``  — Theorem 2's weighted water-filling bound, exact μ and inverse D(R).
* ``achievability`` — Theorem 3 / Algorithm 1's optimal probabilistic compressor.
* ``relu``          — Theorem 4 / App. B: ReLU output MSE by arc-cosine kernel and Hermite series.
* ``golden_rules``  — Corollaries 1–2 checked exhaustively, and counterexamples.
* ``limit``         — real compressors (``.rdz`` files) against R̲(D).
* ``plots``         — the curve, Figure 6, the distance-to-the-limit plot.
"""

from rdcompress.theory.achievability import (
    algorithm1_mutual_information,
    optimal_compressor_mutual_information,
    sample_optimal_compressor,
)
from rdcompress.theory.gaussian import ECSQ_HIGH_RATE_GAP_BITS, gaussian_distortion, gaussian_rate
from rdcompress.theory.relu import (
    relu_hermite_coefficient,
    relu_importance,
    relu_output_mse,
    relu_output_mse_hermite,
    relu_output_mse_monte_carlo,
)
from rdcompress.theory.waterfilling import LinearRegressionBound, WaterLevels

__all__ = [
    "ECSQ_HIGH_RATE_GAP_BITS", "LinearRegressionBound", "WaterLevels",
    "algorithm1_mutual_information", "gaussian_distortion", "gaussian_rate",
    "optimal_compressor_mutual_information", "relu_hermite_coefficient", "relu_importance",
    "relu_output_mse", "relu_output_mse_hermite", "relu_output_mse_monte_carlo",
    "sample_optimal_compressor",
]
