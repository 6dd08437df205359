"""Theorem 3 / Algorithm 1: the optimal probabilistic compressor for linear regression.

Algorithm 1 (App. A.3), per coordinate, with the water levels D_i of ``waterfilling``:

* full rectangle, D_i = E[W_i²]:  Ŵ_i = 0 (the coordinate is discarded);
* otherwise the backward Gaussian test channel W_i = Ŵ_i + Z_i with Ŵ_i ~ N(0, E W_i² − D_i)
  and Z_i ~ N(0, D_i) independent.

Note: the paper's listing has the two branches swapped ("if D_i = μ/λ_{x,i} then Ŵ_i = 0"); its
prose (step 2, "for the entries where the corresponding rectangles are full, simply discard the
entries") and the proof's equality conditions give the version above, which is the one here.

As a forward channel (what a compressor samples given W): for an active coordinate,
Ŵ_i | W_i ~ N(a_i W_i, a_i D_i) with a_i = 1 − D_i / E[W_i²]. For Gaussian W_i and diagonal Σ_W,
I(W; Ŵ) = Σ_active ½ log(E W_i² / D_i) = R̲(D), and E d(W, Ŵ) = Σ λ_i D_i = D.
"""

from __future__ import annotations

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.theory.gaussian import nats_to


def sample_optimal_compressor(weights: np.ndarray, second_moments: np.ndarray,
                              levels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw Ŵ ~ P_{Ŵ|W} of Algorithm 1 for each row of ``weights``.

    weights: (n, m) samples of W; second_moments: (m,) E[W_i²]; levels: (m,) water levels D_i.
    Returns (n, m). Coordinates with D_i ≥ E[W_i²] decode to 0.
    """
    weights = np.asarray(weights, dtype=np.float64)
    second_moments = np.asarray(second_moments, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64)
    m = second_moments.size
    if levels.shape != (m,) or weights.ndim != 2 or weights.shape[1] != m:
        raise ConfigError(f"weights must be (n, m) and levels (m,) with m = {m}, "
                          f"got {weights.shape} and {levels.shape}")
    if np.any(levels <= 0) or np.any(levels > second_moments * (1 + 1e-12)):
        raise ConfigError("levels must satisfy 0 < D_i ≤ E[W_i²] (use LinearRegressionBound)")
    gain = np.clip(1.0 - levels / second_moments, 0.0, None)        # (m,) a_i
    noise_std = np.sqrt(gain * levels)                              # (m,) sd of Ŵ_i | W_i
    return gain * weights + noise_std * rng.standard_normal(weights.shape)


def optimal_compressor_mutual_information(second_moments: np.ndarray, levels: np.ndarray,
                                          units: str = "bits") -> float:
    """Closed form I(W; Ŵ) = Σ_i ½ log(E W_i² / D_i) of Algorithm 1 for diagonal Σ_W."""
    ratio = np.asarray(second_moments, dtype=np.float64) / np.asarray(levels, dtype=np.float64)
    return float(0.5 * np.log(np.maximum(ratio, 1.0)).sum()) * nats_to(units)


def algorithm1_mutual_information(sigma_w: np.ndarray, levels: np.ndarray,
                                  units: str = "bits") -> float:
    """Exact I(W; Ŵ) of Algorithm 1's per-coordinate channel for ANY PD Σ_W (m, m).

    Ŵ = A W + N with A = diag(a_i), N ~ N(0, diag(a_i D_i)) on the active coordinates, so
    I(W; Ŵ) = ½ log det(A Σ_W A + Σ_N) − ½ log det Σ_N. For a non-diagonal Σ_W this exceeds
    the Theorem 2 bound: coding coordinates independently wastes the correlation.
    """
    sigma_w = np.asarray(sigma_w, dtype=np.float64)
    second_moments = np.diag(sigma_w)
    levels = np.asarray(levels, dtype=np.float64)
    active = levels < second_moments
    gain = 1.0 - levels[active] / second_moments[active]             # (k,)
    noise_var = gain * levels[active]                               # (k,)
    sub = sigma_w[np.ix_(active, active)]                           # (k, k)
    output_cov = gain[:, None] * sub * gain[None, :] + np.diag(noise_var)
    nats = 0.5 * (np.linalg.slogdet(output_cov)[1] - np.log(noise_var).sum())
    return float(nats) * nats_to(units)


def gaussian_mutual_information_from_samples(weights: np.ndarray, reconstructions: np.ndarray,
                                             units: str = "bits") -> float:
    """Plug-in I(W; Ŵ) treating (W, Ŵ) as jointly Gaussian, from (n, m) samples of each.

    ½ log(det Σ_W · det Σ_Ŵ / det Σ_(W,Ŵ)); constant (all-zero) columns of Ŵ are dropped.
    """
    keep = np.std(reconstructions, axis=0) > 0
    joint = np.concatenate([weights, reconstructions[:, keep]], axis=1)  # (n, m + k)
    cov = np.cov(joint, rowvar=False)
    m = weights.shape[1]
    logdet = lambda mat: np.linalg.slogdet(mat)[1]  # noqa: E731
    nats = 0.5 * (logdet(cov[:m, :m]) + logdet(cov[m:, m:]) - logdet(cov))
    return float(nats) * nats_to(units)
