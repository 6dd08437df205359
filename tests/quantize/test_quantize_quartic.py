"""Quartic weighted k-means (Algorithm 2): the cubic's single real root, descent, H = 0 case."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from rdcompress.quantize import quartic_kmeans, weighted_lloyd
from rdcompress.quantize.centroids import quartic_root


def one_cluster(rng, n):
    w = rng.normal(loc=rng.normal(), scale=rng.uniform(0.01, 2), size=n)
    I, H = rng.exponential(size=n), rng.exponential(size=n) * rng.uniform(0, 100)
    return w, I, H


def test_root_zeroes_the_derivative_and_matches_scipy():
    rng = np.random.default_rng(0)
    for _ in range(30):
        w, I, H = one_cluster(rng, int(rng.integers(1, 50)))
        root = quartic_root(*(np.array([v]) for v in (
            H.sum(), (H * w).sum(), (H * w**2).sum(), (H * w**3).sum(), I.sum(), (I * w).sum()
        )))[0]
        derivative = np.sum(2 * I * (root - w) + 4 * H * (root - w) ** 3)
        scale = np.sum(2 * I + 12 * H * (root - w) ** 2) * (np.ptp(w) + 1e-3)
        assert abs(derivative) <= 1e-9 * scale

        def objective(c, w=w, I=I, H=H):
            return np.sum(I * (w - c) ** 2 + H * (w - c) ** 4)

        reference = minimize_scalar(objective, bracket=(w.min() - 1, w.max() + 1), tol=1e-12).x
        assert root == pytest.approx(reference, abs=1e-6 * (np.ptp(w) + 1))
        assert objective(root) <= objective(reference) + 1e-12 * objective(reference)


def test_root_by_hand():
    # w = {0, 2}, I = 0, H = 1: f'(c) = 4c³ + 4(c−2)³ = 0  =>  c = 1
    root = quartic_root(*(np.array([v]) for v in (2.0, 2.0, 4.0, 8.0, 0.0, 0.0)))
    assert root[0] == pytest.approx(1.0, abs=1e-12)


def test_zero_quartic_term_is_weighted_lloyd():
    rng = np.random.default_rng(1)
    w, I = rng.normal(size=400), rng.exponential(size=400)
    a = quartic_kmeans(w, I, np.zeros(400), 6)
    b = weighted_lloyd(w, I, 6)
    np.testing.assert_array_equal(a.codebook, b.codebook)
    np.testing.assert_array_equal(a.assignments, b.assignments)


def test_fixed_point_and_descent_from_lloyd():
    rng = np.random.default_rng(2)
    w, I = rng.standard_t(3, size=1500), rng.exponential(size=1500)
    H = rng.exponential(size=1500) * 50

    def J(codebook, labels):
        d = w - codebook[labels]
        return float(np.sum(I * d**2 + H * d**4))

    lloyd = weighted_lloyd(w, I, 5)
    result = quartic_kmeans(w, I, H, 5, init=lloyd.codebook)
    assert result.objective == pytest.approx(J(result.codebook, result.assignments))
    assert result.objective <= J(lloyd.codebook, lloyd.assignments)
    for j, c in enumerate(result.codebook):
        m = result.assignments == j
        derivative = np.sum(2 * I[m] * (c - w[m]) + 4 * H[m] * (c - w[m]) ** 3)
        assert abs(derivative) <= 1e-8 * np.sum(2 * I[m] + 12 * H[m] * (c - w[m]) ** 2)
