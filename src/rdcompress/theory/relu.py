"""Theorem 4 / App. B: output MSE of a one-hidden-layer ReLU model f_w(x) = σ(wᵀx), x ~ N(0, Σ_X).

With a = Σ^{1/2} w, b = Σ^{1/2} ŵ and θ the angle between them, the degree-1 arc-cosine kernel
(Cho & Saul 2009) gives

    E[σ(aᵀz) σ(bᵀz)] = ‖a‖‖b‖/(2π) · (sin θ + (π − θ) cos θ),        z ~ N(0, I),
    E[(f_w − f_ŵ)²]  = ‖a‖²/2 + ‖b‖²/2 − 2 E[σ(aᵀz) σ(bᵀz)].

Equivalently, by Lemma 2 (Ge et al. 2017; stated there for UNIT vectors u, v),
E[σ(aᵀz)σ(bᵀz)] = ‖a‖‖b‖ Σ_p σ̂_p² ρ^p with ρ = cos θ and the normalized-Hermite coefficients

    σ̂_0 = 1/√(2π),  σ̂_1 = 1/2,  σ̂_p = (−1)^{p/2+1} (p−3)!! / √(2π p!)  (p ≥ 2 even),  0 (odd p ≥ 3).

Two corrections to App. B, checked numerically in tests/theory/test_relu.py:
* the paper writes ((p−3)!!)² for even p; the coefficient is (p−3)!! (the squared version
  first differs at p = 6: 9/√(2π·720) instead of 3/√(2π·720), and its Σ σ̂_p² diverges,
  whereas Parseval requires Σ σ̂_p² = E[σ(z)²] = ½);
* the paper applies Lemma 2 to non-unit vectors, writing Σ σ̂_p² (wᵀΣŵ)^p; the correct term
  is ‖a‖‖b‖ σ̂_p² ρ^p, so its "D_0(w, ŵ) = 0" is really σ̂_0²(‖a‖ − ‖b‖)² ≠ 0, and Lemma 3's
  step "for fixed A and C the MSE is minimized at B = 0" does not hold (see golden_rules.py).

The importance matrix of this model is I_w = E[1{wᵀx ≥ 0} x xᵀ] = Σ_X / 2 (App. B, by x ↦ −x
symmetry), for any w ≠ 0.
"""

from __future__ import annotations

import math

import numpy as np

from rdcompress.errors import ConfigError


def relu_hermite_coefficient(p: int) -> float:
    """σ̂_p = E[σ(z) h_p(z)], z ~ N(0, 1), h_p = He_p / √(p!) (normalized probabilists')."""
    if p < 0:
        raise ConfigError(f"p={p} must be >= 0")
    if p == 0:
        return 1.0 / math.sqrt(2.0 * math.pi)
    if p == 1:
        return 0.5
    if p % 2 == 1:
        return 0.0
    # Recurrence σ̂_p = −σ̂_{p−2} (p − 3)/√(p (p − 1)) from σ̂_2 = 1/√(4π): no overflow at large p.
    coefficient = 1.0 / math.sqrt(4.0 * math.pi)
    for q in range(4, p + 1, 2):
        coefficient *= -(q - 3) / math.sqrt(q * (q - 1))
    return coefficient


def paper_relu_hermite_coefficient(p: int) -> float:
    """The coefficient as printed in App. B (with the ((p−3)!!)² typo), for comparison."""
    if p <= 1 or p % 2 == 1:
        return abs(relu_hermite_coefficient(p))
    log_value = 2.0 * _log_double_factorial(p - 3) - 0.5 * math.log(2.0 * math.pi) \
        - 0.5 * math.lgamma(p + 1)
    return math.exp(log_value)


def relu_importance(sigma_x: np.ndarray) -> np.ndarray:
    """I_w = Σ_X / 2 for f_w(x) = σ(wᵀx), x ~ N(0, Σ_X), any w ≠ 0. Returns (m, m)."""
    return 0.5 * _as_matrix(sigma_x)


def relu_output_mse(w: np.ndarray, w_hat: np.ndarray, sigma_x: np.ndarray) -> np.ndarray:
    """Closed-form E_x[(σ(wᵀx) − σ(ŵᵀx))²]; w: (m,), w_hat: (m,) or (n, m) → () or (n,)."""
    norm_a2, norm_b2, inner = _gram(w, w_hat, sigma_x)
    return 0.5 * norm_a2 + 0.5 * norm_b2 - 2.0 * _arccos_kernel(norm_a2, norm_b2, inner)


def relu_output_mse_hermite(w: np.ndarray, w_hat: np.ndarray, sigma_x: np.ndarray,
                            terms: int = 200) -> np.ndarray:
    """The same MSE from the Hermite series ‖a‖‖b‖ Σ_{p<terms} σ̂_p² ρ^p (App. B, corrected)."""
    norm_a2, norm_b2, inner = _gram(w, w_hat, sigma_x)
    coeff2 = np.array([relu_hermite_coefficient(p) ** 2 for p in range(terms)])  # (terms,)
    norms = np.sqrt(norm_a2 * norm_b2)
    rho = np.clip(np.divide(inner, norms, out=np.zeros_like(norms), where=norms > 0), -1, 1)
    series = np.polynomial.polynomial.polyval(rho, coeff2)
    # Converges geometrically for |ρ| < 1, but only like terms^{-3/2} at ρ = ±1 (ŵ ∝ w).
    return 0.5 * norm_a2 + 0.5 * norm_b2 - 2.0 * norms * series


def relu_output_mse_monte_carlo(w: np.ndarray, w_hat: np.ndarray, sigma_x: np.ndarray,
                                num_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Monte Carlo E_x[(σ(wᵀx) − σ(ŵᵀx))²] with x ~ N(0, Σ_X); same shapes as above."""
    sigma = _as_matrix(sigma_x)
    x = rng.multivariate_normal(np.zeros(sigma.shape[0]), sigma, size=num_samples)  # (N, m)
    out = np.maximum(x @ np.asarray(w, dtype=np.float64), 0.0)                       # (N,)
    out_hat = np.maximum(x @ np.atleast_2d(w_hat).T, 0.0)                            # (N, n)
    mse = ((out[:, None] - out_hat) ** 2).mean(axis=0)
    return mse[0] if np.ndim(w_hat) == 1 else mse


def importance_objective(w: np.ndarray, w_hat: np.ndarray, importance: np.ndarray) -> np.ndarray:
    """(w − ŵ)ᵀ I (w − ŵ) (golden rule 2); w_hat (m,) or (n, m)."""
    diff = np.asarray(w, dtype=np.float64) - np.asarray(w_hat, dtype=np.float64)
    return np.einsum("...i,ij,...j->...", diff, importance, diff)


def golden_rule_residual(w: np.ndarray, w_hat: np.ndarray, importance: np.ndarray) -> np.ndarray:
    """ŵᵀ I (w − ŵ), zero under golden rule 1; w_hat (m,) or (n, m)."""
    w_hat = np.asarray(w_hat, dtype=np.float64)
    diff = np.asarray(w, dtype=np.float64) - w_hat
    return np.einsum("...i,ij,...j->...", w_hat, importance, diff)


def mse_optimal_scale(w: np.ndarray, w_hat: np.ndarray, sigma_x: np.ndarray) -> np.ndarray:
    """argmin_{s ≥ 0} MSE(w, s·ŵ) = 2‖a‖ κ(θ)/‖b‖, κ(θ) = (sin θ + (π − θ) cos θ)/(2π).

    σ is positively homogeneous, so MSE(s) = ‖a‖²/2 + s²‖b‖²/2 − 2 s ‖a‖‖b‖ κ(θ).
    """
    norm_a2, norm_b2, inner = _gram(w, w_hat, sigma_x)
    kernel = _arccos_kernel(norm_a2, norm_b2, inner)   # = ‖a‖‖b‖ κ(θ)
    return np.maximum(2.0 * kernel / norm_b2, 0.0)


# ---------------------------------------------------------------------------------------------
# Pure helpers.


def _gram(w: np.ndarray, w_hat: np.ndarray, sigma_x: np.ndarray):
    """‖a‖², ‖b‖², aᵀb for a = Σ^{1/2} w, b = Σ^{1/2} ŵ (only Σ-inner products are needed)."""
    sigma = _as_matrix(sigma_x)
    w = np.asarray(w, dtype=np.float64)
    w_hat = np.asarray(w_hat, dtype=np.float64)
    if w.ndim != 1 or w_hat.shape[-1] != w.size or sigma.shape != (w.size, w.size):
        raise ConfigError(f"shapes do not match: w {w.shape}, w_hat {w_hat.shape}, "
                          f"sigma_x {sigma.shape}; expected (m,), (m,) or (n, m), (m, m)")
    norm_a2 = float(w @ sigma @ w)
    norm_b2 = np.einsum("...i,ij,...j->...", w_hat, sigma, w_hat)
    inner = w_hat @ sigma @ w
    return norm_a2, norm_b2, inner


def _arccos_kernel(norm_a2, norm_b2, inner):
    """E[σ(aᵀz)σ(bᵀz)] from ‖a‖², ‖b‖², aᵀb; 0 when a or b is 0."""
    norms = np.sqrt(norm_a2 * norm_b2)
    cos = np.clip(np.divide(inner, norms, out=np.zeros_like(norms * 1.0), where=norms > 0), -1, 1)
    theta = np.arccos(cos)
    return norms / (2.0 * np.pi) * (np.sin(theta) + (np.pi - theta) * cos)


def _as_matrix(sigma_x: np.ndarray) -> np.ndarray:
    sigma = np.asarray(sigma_x, dtype=np.float64)
    return np.diag(sigma) if sigma.ndim == 1 else sigma


def _log_double_factorial(n: int) -> float:
    """log(n!!) for odd n ≥ −1 ((−1)!! = 1)."""
    return float(sum(math.log(k) for k in range(n, 0, -2)))
