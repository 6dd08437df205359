"""Example 1 of the paper: the rate-distortion function of one Gaussian variable.

    R(D) = ½ log(σ² / D)   for 0 < D ≤ σ²,     R(D) = 0   for D > σ².

Also the unit handling shared by the whole ``rdcompress.theory`` package: every rate is
returned in bits (log₂) by default, or in nats (ln) with ``units="nats"``.
"""

from __future__ import annotations

import math

import numpy as np

from rdcompress.errors import ConfigError

UNITS: tuple[str, ...] = ("bits", "nats")

# ½·log₂(πe/6): the high-rate gap of entropy-coded uniform scalar quantization to the Gaussian
# R(D) (Gish & Pierce 1968), in bits per sample.
ECSQ_HIGH_RATE_GAP_BITS: float = 0.5 * math.log2(math.pi * math.e / 6.0)


def check_units(units: str) -> str:
    """Return ``units`` if it is "bits" or "nats", else raise ConfigError."""
    if units not in UNITS:
        raise ConfigError(f"units={units!r} is not supported; expected one of {UNITS}")
    return units


def nats_to(units: str) -> float:
    """Factor that converts a quantity in nats into ``units`` (1/ln 2 for bits)."""
    return 1.0 / math.log(2.0) if check_units(units) == "bits" else 1.0


def gaussian_rate(variance: float | np.ndarray, distortion: float | np.ndarray,
                  units: str = "bits") -> np.ndarray:
    """R(D) = max(0, ½ log(σ²/D)) of X ~ N(0, σ²) under squared error (Example 1).

    Broadcasts over arrays. ``distortion`` must be > 0 (R(0) is infinite).
    """
    var = np.asarray(variance, dtype=np.float64)
    dist = np.asarray(distortion, dtype=np.float64)
    if np.any(var <= 0) or not np.all(np.isfinite(var)):
        raise ConfigError(f"variance must be finite and > 0, got {variance!r}")
    if np.any(dist <= 0) or not np.all(np.isfinite(dist)):
        raise ConfigError(f"distortion must be finite and > 0 (R(0) is infinite), "
                          f"got {distortion!r}")
    return np.maximum(0.0, 0.5 * np.log(var / dist)) * nats_to(units)


def gaussian_distortion(variance: float | np.ndarray, rate: float | np.ndarray,
                        units: str = "bits") -> np.ndarray:
    """D(R) = σ² · exp(−2R) (R in nats; 2^{−2R} in bits): the inverse of ``gaussian_rate``."""
    var = np.asarray(variance, dtype=np.float64)
    rate_nats = np.asarray(rate, dtype=np.float64) / nats_to(units)
    if np.any(var <= 0):
        raise ConfigError(f"variance must be > 0, got {variance!r}")
    if np.any(rate_nats < 0):
        raise ConfigError(f"rate must be >= 0, got {rate!r}")
    return var * np.exp(-2.0 * rate_nats)
