"""The limit on a real model: water-filling on the model's own statistics (issue 13, item 4).

The paper's Theorem 2 applied to a trained network under its quadratic surrogate: the
distortion of a compressed model is d(w, ŵ) = Σ_i I_i (w_i − ŵ_i)² (I: the importance, the
diagonal of Σ_X in the linear case, the Fisher diagonal for KL ≈ ½ d), and the weights of each
layer ℓ are modelled as i.i.d. with second moment v_ℓ = mean(w²) over the layer. Two curves
bracket the rate–distortion function of that model, in bits:

- ``gaussian``: the weights Gaussian, W_i ~ N(0, v_ℓ): reverse water-filling over components
  with breakpoints b_i = I_i v_ℓ (Theorem 2 with diagonal Σ_W, Σ_X):
  R_G(D) = Σ_{b_i > μ} ½ log2(b_i / μ),  Σ_i min(μ, b_i) = D.
  Among all sources with these second moments the Gaussian is the hardest to compress, so R_G
  is an UPPER bound on R(D) of the i.i.d. model; it is the paper's bound exactly when the
  weights are Gaussian.
- ``shannon``: the Shannon lower bound with each layer's differential entropy estimated from
  its weights (Vasicek's m-spacing estimator): with u_i = √I_i w_i,
  R(D) ≥ R_S(D) = Σ_i h(u_i) − (m/2) log2(2πe D / m),  h(u_i) = h_ℓ + ½ log2 I_i,
  a lower bound for independent components (clipped at 0), tight at high rate.

Neither accounts for dependence between weights (which only lowers R(D)) nor for the gap
between the surrogate and the model's real output distortion; plots say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.theory.waterfilling import water_level_for_distortion

LOG2_2PIE = math.log2(2 * math.pi * math.e)


@dataclass(frozen=True)
class ModelLimit:
    """The two curves' ingredients for one model (``model_limit``)."""

    breakpoints: np.ndarray  # (m,) b_i = I_i v_ℓ for the components with I_i > 0, sorted
    zero_importance: int  # components with I_i = 0: free to drop, no rate, no distortion
    entropy_bits: float  # Σ_i h(u_i) in bits over the components with I_i > 0
    numel: int  # all components (the per-weight denominator)
    gaussian_entropy_layers: tuple[str, ...] = ()  # layers whose weights are all equal: their
    #   entropy is the Gaussian's of their second moment (the i.i.d. model does not fit them)
    spread_bits: float = 0.0  # Σ_ℓ n_ℓ ½ log2(mean_ℓ I / geomean_ℓ I) (bits, total): what one
    #   grid step per layer pays at high rate for ignoring how I varies inside the layer (AM-GM)

    @property
    def max_distortion(self) -> float:
        """Σ b_i: every component dropped (ŵ = 0)."""
        return float(self.breakpoints.sum())

    def gaussian_rate(self, distortion: float | np.ndarray) -> np.ndarray:
        """R_G(D) in bits (total), exact at each D (the water level solved on its piece)."""
        values = np.atleast_1d(np.asarray(distortion, dtype=np.float64))
        b = self.breakpoints
        suffix_log = np.concatenate([np.cumsum(np.log2(b)[::-1])[::-1], [0.0]])  # Σ_{i≥j}
        rates = np.empty_like(values)
        for index, d in enumerate(values):
            if d >= self.max_distortion:
                rates[index] = 0.0
                continue
            mu = water_level_for_distortion(b, float(max(d, 0.0)))
            first = int(np.searchsorted(b, mu, side="right"))  # b_i > μ from here on
            active = b.size - first
            rates[index] = 0.5 * (suffix_log[first] - active * math.log2(mu)) if active else 0.0
        return rates

    def shannon_rate(self, distortion: float | np.ndarray) -> np.ndarray:
        """R_S(D) in bits (total), clipped at 0."""
        d = np.atleast_1d(np.asarray(distortion, dtype=np.float64))
        m = self.breakpoints.size
        with np.errstate(divide="ignore"):
            rate = self.entropy_bits - 0.5 * m * (LOG2_2PIE + np.log2(d / m))
        return np.maximum(rate, 0.0)


def vasicek_entropy_bits(values: np.ndarray, spacing: int | None = None) -> float:
    """Differential entropy (bits) of the distribution of ``values`` (n,), by Vasicek's
    m-spacing estimator h ≈ mean_i log2(n / (2m) · (x_(i+m) − x_(i−m))), m ≈ √n / 2; ties
    (zero spacings) are floored at the smallest positive spacing so the estimate stays finite."""
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    if n < 4:
        raise ConfigError(f"an entropy estimate needs at least 4 values, got {n}.")
    m = spacing or max(1, int(round(math.sqrt(n) / 2)))
    upper = x[np.minimum(np.arange(n) + m, n - 1)]
    lower = x[np.maximum(np.arange(n) - m, 0)]
    gaps = upper - lower
    positive = gaps[gaps > 0]
    if positive.size == 0:
        raise ConfigError("every value is the same: the differential entropy is -inf.")
    gaps = np.maximum(gaps, positive.min())
    return float(np.mean(np.log2(n / (2 * m) * gaps)))


def model_limit(weights: Mapping[str, np.ndarray], importance: Mapping[str, np.ndarray]
                ) -> ModelLimit:
    """The limit curves of a model from its weights and importances ({name: array}, same
    shapes): each parameter tensor is one layer of i.i.d. weights."""
    breakpoints, entropy, zero, numel, degenerate, spread = [], 0.0, 0, 0, [], 0.0
    for name, weight in weights.items():
        w = np.asarray(weight, dtype=np.float64).ravel()
        if name not in importance:
            raise ConfigError(f"no importance for {name!r}; compute it for this model.")
        I = np.asarray(importance[name], dtype=np.float64).ravel()
        if I.shape != w.shape or not np.all(np.isfinite(I)) or (I < 0).any():
            raise ConfigError(f"importance of {name!r} must be finite, >= 0 and of the "
                              f"weight's shape {w.shape}.")
        numel += w.size
        active = I > 0
        zero += int((~active).sum())
        second_moment = float(np.mean(w * w))
        if second_moment == 0 or not active.any():
            zero += int(active.sum())
            continue
        breakpoints.append(I[active] * second_moment)
        log_I = np.log2(I[active])
        spread += 0.5 * log_I.size * (math.log2(float(I[active].mean())) - float(log_I.mean()))
        if w.size >= 4 and np.ptp(w) > 0:
            h_layer = vasicek_entropy_bits(w)
        else:  # one value (or too few to estimate): the Gaussian's entropy, said in the result
            h_layer = 0.5 * math.log2(2 * math.pi * math.e * second_moment)
            degenerate.append(name)
        entropy += float(np.sum(h_layer + 0.5 * np.log2(I[active])))
    if not breakpoints:
        raise ConfigError("no component has both a nonzero weight and a positive importance.")
    return ModelLimit(np.sort(np.concatenate(breakpoints)), zero, entropy, numel,
                      tuple(degenerate), spread)
