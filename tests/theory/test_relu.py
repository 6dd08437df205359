"""ReLU output MSE: arc-cosine closed form vs corrected Hermite series vs Monte Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermeval
from scipy import integrate

from rdcompress.theory.relu import (
    golden_rule_residual,
    importance_objective,
    mse_optimal_scale,
    paper_relu_hermite_coefficient,
    relu_hermite_coefficient,
    relu_importance,
    relu_output_mse,
    relu_output_mse_hermite,
    relu_output_mse_monte_carlo,
)


def _numeric_coefficient(p):
    basis = np.zeros(p + 1)
    basis[p] = 1.0
    integrand = lambda z: z * hermeval(z, basis) * np.exp(-z * z / 2)  # noqa: E731
    value = integrate.quad(integrand, 0.0, np.inf, epsabs=1e-11)[0]
    return value / math.sqrt(2 * math.pi * math.factorial(p))


@pytest.mark.parametrize("p", range(11))
def test_hermite_coefficients_by_quadrature(p):
    assert relu_hermite_coefficient(p) == pytest.approx(_numeric_coefficient(p), abs=1e-10)


def test_paper_coefficient_typo_and_parseval():
    # The printed ((p−3)!!)² agrees for p ≤ 4 and is wrong from p = 6 on.
    for p in (0, 1, 2, 4):
        assert paper_relu_hermite_coefficient(p) == pytest.approx(abs(relu_hermite_coefficient(p)))
    assert paper_relu_hermite_coefficient(6) == pytest.approx(3 * abs(relu_hermite_coefficient(6)))
    # Parseval: Σ σ̂_p² = E[σ(z)²] = ½ (tail ~ p^{-3/2}); the printed version diverges.
    total = sum(relu_hermite_coefficient(p) ** 2 for p in range(4000))
    assert total == pytest.approx(0.5, abs=2e-4)
    assert sum(paper_relu_hermite_coefficient(p) ** 2 for p in range(30)) > 1e6


def test_closed_form_hermite_and_monte_carlo_agree():
    rng = np.random.default_rng(0)
    m = 4
    factor = rng.standard_normal((m, m))
    sigma_x = factor @ factor.T / m + 0.3 * np.eye(m)
    w = rng.standard_normal(m)
    w_hat = np.stack([w * 0.5, np.zeros(m), w + 0.3 * rng.standard_normal(m),
                      rng.standard_normal(m), -w])                                  # (5, m)
    closed = relu_output_mse(w, w_hat, sigma_x)
    inner = [1, 2, 3]       # |ρ| < 1: geometric convergence
    np.testing.assert_allclose(relu_output_mse_hermite(w, w_hat[inner], sigma_x, terms=400),
                               closed[inner], rtol=1e-6, atol=1e-9)
    aligned = [0, 4]        # ρ = ±1: the tail decays only like terms^{-3/2}
    np.testing.assert_allclose(relu_output_mse_hermite(w, w_hat[aligned], sigma_x, terms=4000),
                               closed[aligned], atol=2e-4)
    mc = relu_output_mse_monte_carlo(w, w_hat, sigma_x, 200_000, rng)
    np.testing.assert_allclose(mc, closed, rtol=0.03)
    # Hand cases: ŵ = 0 → E σ(wᵀx)² = wᵀΣw/2; ŵ = s w (s > 0) → (1 − s)² wᵀΣw/2; ŵ = −w → wᵀΣw.
    quad = w @ sigma_x @ w
    assert closed[1] == pytest.approx(quad / 2)
    assert closed[0] == pytest.approx(0.25 * quad / 2)
    assert closed[4] == pytest.approx(quad)


def test_importance_is_half_sigma_x_by_monte_carlo():
    rng = np.random.default_rng(1)
    sigma_x = np.array([[2.0, 0.5], [0.5, 1.0]])
    w = np.array([0.7, -1.3])
    x = rng.multivariate_normal([0, 0], sigma_x, size=200_000)
    gate = (x @ w >= 0)[:, None, None]
    mc = (gate * x[:, :, None] * x[:, None, :]).mean(axis=0)
    np.testing.assert_allclose(mc, relu_importance(sigma_x), atol=0.02)


def test_objective_residual_and_optimal_scale_by_hand():
    w, importance = np.array([1.0, 2.0]), np.eye(2)
    assert importance_objective(w, np.array([1.0, 0.0]), importance) == pytest.approx(4.0)
    assert golden_rule_residual(w, np.array([1.0, 0.0]), importance) == 0.0
    assert golden_rule_residual(w, np.array([2.0, 0.0]), importance) == pytest.approx(-2.0)
    # s* from the closed form equals a brute-force 1-D search.
    sigma_x = np.diag([1.0, 3.0])
    w_hat = np.array([1.0, 0.0])
    grid = np.linspace(0, 4, 40001)
    mse = relu_output_mse(w, grid[:, None] * w_hat, sigma_x)
    assert float(mse_optimal_scale(w, w_hat, sigma_x)) == pytest.approx(grid[np.argmin(mse)],
                                                                        abs=2e-4)
