"""Theorem 2: the lower bound on R(D) for linear regression, by weighted water-filling.

For f_w(x) = wᵀx with E[x xᵀ] = Σ_X = diag(λ_1..λ_m) and W ~ N(0, Σ_W), the distortion is
d(w, ŵ) = (w − ŵ)ᵀ Σ_X (w − ŵ), and (paper §4.1, App. A.2)

    R(D) ≥ R̲(D) = ½ log det Σ_W − Σ_i ½ log D_i,
    D_i = μ / λ_i  if μ < λ_i E[W_i²],   D_i = E[W_i²]  otherwise,   Σ_i λ_i D_i = D.

Symbols: ``lambda_x`` = λ_i, ``second_moments`` = E[W_i²] = (Σ_W)_ii, ``breakpoints`` =
b_i = λ_i E[W_i²], ``mu`` = μ (the "volume of water" in each rectangle of Figure 6), ``levels``
= the water levels D_i.

μ is found exactly, not by bisection: D(μ) = Σ_i min(μ, b_i) is piecewise linear and
increasing in μ with kinks at the sorted breakpoints, so one linear equation is solved on the
right piece. The inverse D(R) is exact too: on each piece R̲ = K_j − (k_j/2)·log μ with k_j
active coordinates, so μ = exp(2 (K_j − R)/k_j).

Non-diagonal Σ_W: the bound keeps the paper's log-det term and caps D_i at (Σ_W)_ii. It is then
a valid lower bound but NOT tight (Algorithm 1 codes coordinates independently and pays the
correlation; see ``achievability.algorithm1_mutual_information``); it can even go negative
near D_max (Hadamard: log det Σ_W ≤ Σ log (Σ_W)_ii), so ``rate`` returns max(0, R̲), itself a
lower bound because I(W; Ŵ) ≥ 0.

Non-diagonal Σ_X (an extension; the paper assumes diagonal): with Σ_X = U Λ Uᵀ the map
w ↦ Uᵀw is invertible, so it leaves I(W; Ŵ) unchanged and turns the distortion into
Σ λ_i (w'_i − ŵ'_i)², i.e. the theorem applies to Σ_W' = Uᵀ Σ_W U and λ = eigenvalues.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.theory.gaussian import nats_to


@dataclass(frozen=True)
class WaterLevels:
    """The solution of the weighted water-filling at one distortion."""

    mu: float               # μ: λ_i D_i = μ on every active (not full) coordinate
    levels: np.ndarray      # (m,) water levels D_i = E[(W_i − Ŵ_i)²] of the optimal compressor
    active: np.ndarray      # (m,) bool, D_i < E[W_i²] (coordinate is coded; else Ŵ_i = 0)
    distortion: float       # Σ λ_i D_i
    rate: float             # max(0, R̲(D)) for the whole m-dimensional model, in ``units``
    rate_per_weight: float  # rate / m
    units: str              # "bits" or "nats"

    def to_dict(self) -> dict:
        return {"mu": self.mu, "levels": self.levels.tolist(), "active": self.active.tolist(),
                "distortion": self.distortion, "rate": self.rate,
                "rate_per_weight": self.rate_per_weight, "units": self.units}


class LinearRegressionBound:
    """R̲(D) of Theorem 2 for given Σ_W (vector = diagonal, or PD matrix) and Σ_X.

    >>> bound = LinearRegressionBound([3, 2, 1], [3, 2, 1])
    >>> round(bound.rate(1.0), 6)   # all three rectangles active, μ = 1/3
    4.962406
    """

    def __init__(self, sigma_w: np.ndarray | list, sigma_x: np.ndarray | list) -> None:
        sigma_w_mat = _as_covariance(sigma_w, "sigma_w")   # (m, m)
        sigma_x_mat = _as_covariance(sigma_x, "sigma_x")   # (m, m)
        if sigma_w_mat.shape != sigma_x_mat.shape:
            raise ConfigError(
                f"sigma_w is {sigma_w_mat.shape[0]}-dimensional but sigma_x is "
                f"{sigma_x_mat.shape[0]}-dimensional; give one entry per weight for both")
        self.dim = sigma_w_mat.shape[0]
        self.logdet_sigma_w = float(np.linalg.slogdet(sigma_w_mat)[1])  # nats
        if _is_diagonal(sigma_x_mat):
            self.rotation = None
            self.lambda_x = np.diag(sigma_x_mat).copy()                     # (m,)
            rotated_w = sigma_w_mat
        else:
            self.lambda_x, self.rotation = np.linalg.eigh(sigma_x_mat)      # (m,), (m, m)
            rotated_w = self.rotation.T @ sigma_w_mat @ self.rotation
        self.second_moments = np.diag(rotated_w).copy()                     # (m,) E[W_i²]
        self.is_tight = _is_diagonal(rotated_w)  # Theorem 3: achievable iff Σ_W' diagonal
        self.breakpoints = self.lambda_x * self.second_moments               # (m,) b_i
        self.max_distortion = float(self.breakpoints.sum())                  # R̲ = 0 beyond

    def levels(self, distortion: float, units: str = "bits") -> WaterLevels:
        """Water levels D_i, μ and R̲ at total distortion ``distortion`` > 0."""
        distortion = float(distortion)
        if not np.isfinite(distortion) or distortion <= 0:
            raise ConfigError(f"distortion={distortion!r} must be finite and > 0 "
                              "(R(0) is infinite)")
        mu = water_level_for_distortion(self.breakpoints, distortion)
        return self._solution(mu, units)

    def levels_at_rate(self, rate: float, units: str = "bits") -> WaterLevels:
        """The inverse: water levels at which max(0, R̲) equals ``rate`` (total, in units)."""
        rate_nats = float(rate) / nats_to(units)
        if not np.isfinite(rate_nats) or rate_nats < 0:
            raise ConfigError(f"rate={rate!r} must be finite and >= 0")
        mu = water_level_for_rate(self.breakpoints, self.lambda_x, self.second_moments,
                                  self.logdet_sigma_w, rate_nats)
        return self._solution(mu, units)

    def rate(self, distortion: float | np.ndarray, units: str = "bits") -> float | np.ndarray:
        """max(0, R̲(D)) for the whole model; broadcasts over an array of distortions."""
        values = np.array([self.levels(d, units).rate for d in np.ravel(distortion)])
        if np.ndim(distortion) == 0:
            return float(values[0])
        return values.reshape(np.shape(distortion))

    def distortion(self, rate: float | np.ndarray, units: str = "bits") -> float | np.ndarray:
        """D(R): the smallest distortion whose bound max(0, R̲) is ≤ ``rate``."""
        values = np.array([self.levels_at_rate(r, units).distortion for r in np.ravel(rate)])
        return float(values[0]) if np.ndim(rate) == 0 else values.reshape(np.shape(rate))

    def kinks(self, units: str = "bits") -> list[WaterLevels]:
        """One solution per distinct breakpoint below D_max: where a rectangle becomes full."""
        distinct = np.unique(self.breakpoints)[:-1]
        return [self._solution(float(mu), units) for mu in distinct]

    def curve(self, num_points: int = 200, units: str = "bits",
              min_fraction: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
        """(D, R) arrays on a grid from min_fraction·D_max to D_max, kinks included."""
        if num_points < 2:
            raise ConfigError(f"num_points={num_points} must be >= 2")
        if not 0 < min_fraction < 1:
            raise ConfigError(f"min_fraction={min_fraction} must be in (0, 1)")
        grid = np.geomspace(min_fraction, 1.0, num_points) * self.max_distortion
        kink_d = [k.distortion for k in self.kinks(units)]
        distortions = np.unique(np.concatenate([grid, kink_d]))
        return distortions, np.asarray(self.rate(distortions, units))

    def _solution(self, mu: float, units: str) -> WaterLevels:
        levels = np.minimum(mu, self.breakpoints) / self.lambda_x                # (m,)
        raw_nats = 0.5 * self.logdet_sigma_w - 0.5 * float(np.log(levels).sum())
        rate = max(0.0, raw_nats) * nats_to(units)
        return WaterLevels(mu=mu, levels=levels, active=mu < self.breakpoints,
                           distortion=float((self.lambda_x * levels).sum()), rate=rate,
                           rate_per_weight=rate / self.dim, units=units)


# ---------------------------------------------------------------------------------------------
# Pure functions (validated inputs assumed).


def water_level_for_distortion(breakpoints: np.ndarray, distortion: float) -> float:
    """μ with Σ_i min(μ, b_i) = D, exact; μ = max b_i when D ≥ Σ b_i.

    On the piece b_(j) ≤ μ < b_(j+1) of the sorted breakpoints, D(μ) = S_j + (m − j) μ with
    S_j = b_(1) + ... + b_(j); j = how many kinks have D(b_(j)) ≤ D.
    """
    b_sorted = np.sort(breakpoints)                                  # (m,)
    m = b_sorted.size
    cumulative = np.concatenate([[0.0], np.cumsum(b_sorted)])        # (m+1,) S_0..S_m
    d_at_kinks = cumulative[1:] + (m - np.arange(1, m + 1)) * b_sorted  # (m,) D(b_(j))
    j = int(np.searchsorted(d_at_kinks, distortion, side="right"))  # kinks with D(b) ≤ D
    # Decide "every rectangle full" from the same rounded sums as the pieces: a sum computed
    # another way (np.sum, unsorted) can differ in the last bit and leave j = m, i.e. 0/0.
    if j >= m:
        return float(b_sorted[-1])
    # Rounding can also put μ a hair outside its piece; clamp it there (D(μ) is continuous).
    mu = (distortion - cumulative[j]) / (m - j)
    low = b_sorted[j - 1] if j > 0 else 0.0
    return float(min(max(mu, low), b_sorted[j]))


def water_level_for_rate(breakpoints: np.ndarray, lambda_x: np.ndarray,
                         second_moments: np.ndarray, logdet_sigma_w: float,
                         rate_nats: float) -> float:
    """μ with max(0, R̲(μ)) = R (nats), exact; R̲(μ) decreases from +∞ at μ → 0.

    With coordinates sorted by breakpoint, on the piece b_(j) ≤ μ < b_(j+1) the first j are
    full (D_i = E W_i²) and the k = m − j others have D_i = μ/λ_i, so
    R̲(μ) = K_j − (k/2) log μ,  K_j = ½ log det Σ_W − ½ Σ_{i≤j} log E W_i² + ½ Σ_{i>j} log λ_i.
    """
    order = np.argsort(breakpoints, kind="stable")
    b_sorted = breakpoints[order]                                    # (m,)
    log_v = np.log(second_moments[order])                            # (m,)
    log_lam = np.log(lambda_x[order])                                # (m,)
    m = b_sorted.size
    j = np.arange(m)                                                 # pieces j = 0..m-1
    full_part = np.concatenate([[0.0], np.cumsum(log_v)])[:-1]       # Σ_{i≤j} log v
    active_part = np.concatenate([np.cumsum(log_lam[::-1])[::-1], [0.0]])[:-1]  # Σ_{i>j} log λ
    intercept = 0.5 * logdet_sigma_w - 0.5 * full_part + 0.5 * active_part  # (m,) K_j
    active_count = m - j                                             # (m,) k_j ≥ 1
    rate_at_kinks = intercept - 0.5 * active_count * np.log(b_sorted)  # (m,) R̲(b_(j+1))
    # Piece j holds R if R̲(b_(j+1)) ≤ R < R̲(b_(j)); rate_at_kinks is non-increasing.
    piece = int(np.searchsorted(-rate_at_kinks, -rate_nats, side="left"))
    if piece >= m:   # R at or below the floor R̲(D_max): the last kink
        return float(b_sorted[-1])
    return float(np.exp(2.0 * (intercept[piece] - rate_nats) / active_count[piece]))


def _as_covariance(value: np.ndarray | list, name: str) -> np.ndarray:
    """A (m,) vector of variances → diag; a (m, m) matrix → checked symmetric PD."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 1:
        if array.size == 0 or not np.all(np.isfinite(array)) or np.any(array <= 0):
            raise ConfigError(f"{name} must be a non-empty vector of finite variances > 0, "
                              f"got {array.tolist()}; negative or zero entries are impossible")
        return np.diag(array)
    if array.ndim != 2 or array.shape[0] != array.shape[1] or array.size == 0:
        raise ConfigError(f"{name} must be a vector of variances or a square matrix, "
                          f"got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ConfigError(f"{name} contains non-finite entries")
    if not np.allclose(array, array.T, rtol=1e-10, atol=1e-12 * np.abs(array).max()):
        raise ConfigError(f"{name} must be symmetric; max |A − Aᵀ| = "
                          f"{np.abs(array - array.T).max():.3g}")
    smallest = float(np.linalg.eigvalsh(array).min())
    if smallest <= 0:
        raise ConfigError(f"{name} must be positive definite, but its smallest eigenvalue is "
                          f"{smallest:.6g}; drop or regularize degenerate directions")
    return 0.5 * (array + array.T)


def _is_diagonal(matrix: np.ndarray) -> bool:
    return bool(np.count_nonzero(matrix - np.diag(np.diag(matrix))) == 0)
