"""Factorizations: closed forms, metrics that must agree, optimality on data, bad input."""

from __future__ import annotations

import pytest
import torch

from rdcompress.errors import ConfigError, NonFiniteError
from rdcompress.lowrank import (
    as_matrix,
    fwsvd,
    max_useful_rank,
    truncated_svd,
    weighted_lowrank,
    whitened_svd,
)


def _matrix(out=12, d=9, seed=0) -> torch.Tensor:
    return torch.randn(out, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _weighted_error(W, I, A, B) -> float:
    return float((I * (W - A @ B) ** 2).sum())


@pytest.mark.parametrize("rank", [1, 3, 9])
def test_truncated_svd_error_is_the_tail_of_the_spectrum(rank):  # Eckart–Young
    W = _matrix()
    A, B = truncated_svd(W, rank)
    assert A.shape == (12, rank) and B.shape == (rank, 9)
    s = torch.linalg.svdvals(W)
    torch.testing.assert_close(torch.linalg.norm(W - A @ B) ** 2, (s[rank:] ** 2).sum(),
                               atol=1e-10, rtol=1e-10)


def test_truncated_svd_beats_random_rank_r_matrices():
    W = _matrix()
    A, B = truncated_svd(W, 2)
    best = float(torch.linalg.norm(W - A @ B))
    gen = torch.Generator().manual_seed(3)
    for _ in range(50):
        other = torch.randn(12, 2, generator=gen, dtype=torch.float64) \
            @ torch.randn(2, 9, generator=gen, dtype=torch.float64)
        assert float(torch.linalg.norm(W - other)) >= best


def test_fwsvd_and_weighted_reduce_to_svd_when_importance_is_uniform():
    W, I = _matrix(), torch.full((12, 9), 2.5, dtype=torch.float64)
    reference = truncated_svd(W, 3)
    for A, B in (fwsvd(W, I, 3), weighted_lowrank(W, I, 3, iters=5)):
        torch.testing.assert_close(A @ B, reference[0] @ reference[1], atol=1e-9, rtol=1e-9)


def test_fwsvd_is_the_weighted_optimum_for_row_constant_importance():
    W = _matrix()
    rows = torch.linspace(0.1, 5.0, 12, dtype=torch.float64)
    I = rows[:, None].expand(12, 9).clone()  # rank 1, constant along each row
    A, B = fwsvd(W, I, 3)
    # closed form: SVD of diag(sqrt(c)) W truncated, mapped back
    s = torch.linalg.svdvals(rows.sqrt()[:, None] * W)
    assert _weighted_error(W, I, A, B) == pytest.approx(float((s[3:] ** 2).sum()), rel=1e-9)
    # ALS from a random start reaches the same optimum
    gen = torch.Generator().manual_seed(1)
    start = (torch.randn(12, 3, generator=gen, dtype=torch.float64),
             torch.randn(3, 9, generator=gen, dtype=torch.float64))
    A2, B2 = weighted_lowrank(W, I, 3, iters=50, init=start)
    assert _weighted_error(W, I, A2, B2) == pytest.approx(_weighted_error(W, I, A, B), rel=1e-6)


def test_weighted_lowrank_decreases_the_weighted_error_monotonically():
    W = _matrix(10, 14)
    I = torch.rand(10, 14, generator=torch.Generator().manual_seed(2), dtype=torch.float64) ** 3
    A, B = fwsvd(W, I, 3)
    errors = [_weighted_error(W, I, A, B)]
    for _ in range(15):
        A, B = weighted_lowrank(W, I, 3, iters=1, init=(A, B))
        errors.append(_weighted_error(W, I, A, B))
    assert all(b <= a * (1 + 1e-9) for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 0.95 * errors[0]  # element-wise weights: FWSVD is not the optimum
    plain = truncated_svd(W, 3)
    assert errors[-1] < _weighted_error(W, I, *plain)


def test_weighted_lowrank_survives_zero_importance_columns():
    W, I = _matrix(), torch.rand(12, 9, dtype=torch.float64)
    I[:, 4] = 0  # a dead input (e.g. a constant border pixel)
    A, B = weighted_lowrank(W, I, 2, iters=5)
    assert torch.isfinite(A).all() and torch.isfinite(B).all()


def test_whitened_svd_minimizes_output_error_on_data():
    gen = torch.Generator().manual_seed(4)
    mixing = torch.randn(9, 9, generator=gen, dtype=torch.float64) * torch.logspace(
        0, -2, 9, dtype=torch.float64)  # anisotropic inputs
    X = torch.randn(4000, 9, generator=gen, dtype=torch.float64) @ mixing.T  # (n, d)
    W = _matrix()
    moment = X.T @ X / len(X)

    def output_error(A, B):
        return float((((W - A @ B) @ X.T) ** 2).sum(0).mean())

    A, B = whitened_svd(W, moment, 3, eps=0.0)
    whitened, plain = output_error(A, B), output_error(*truncated_svd(W, 3))
    assert whitened < 0.9 * plain
    # closed form: the tail of the spectrum of W S with S Sᵀ = M
    s = torch.linalg.svdvals(W @ torch.linalg.cholesky(moment))
    assert whitened == pytest.approx(float((s[3:] ** 2).sum()), rel=1e-8)
    gen2 = torch.Generator().manual_seed(5)
    for _ in range(30):  # no rank-3 perturbation of the optimum does better
        dA = 0.05 * torch.randn(12, 3, generator=gen2, dtype=torch.float64)
        assert output_error(A + dA, B) >= whitened


def test_conv_weights_are_viewed_channel_major():
    weight = torch.randn(4, 3, 2, 2)
    assert as_matrix(weight).shape == (4, 12)
    assert torch.equal(as_matrix(weight)[1, 4:8], weight[1, 1].reshape(-1).double())


def test_max_useful_rank_is_the_break_even_point():
    for out, d in [(10, 10), (256, 784), (1, 5), (16, 144)]:
        r = max_useful_rank(out, d)
        assert r * (out + d) < out * d and (r + 1) * (out + d) >= out * d


@pytest.mark.parametrize("rank", [0, 10, -1, 2.0, True])
def test_bad_ranks_are_config_errors(rank):
    with pytest.raises(ConfigError, match="rank"):
        truncated_svd(_matrix(12, 9), rank)


def test_non_finite_inputs_are_rejected():
    W = _matrix()
    W[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN"):
        truncated_svd(W, 2)
    I = torch.ones(12, 9, dtype=torch.float64)
    I[1, 1] = float("inf")
    with pytest.raises(NonFiniteError):
        fwsvd(_matrix(), I, 2)


def test_bad_shapes_are_config_errors():
    with pytest.raises(ConfigError, match="2-D"):
        as_matrix(torch.randn(3, 4, 5))
    with pytest.raises(ConfigError, match="importance shape"):
        fwsvd(_matrix(), torch.ones(3, 3), 2)
    with pytest.raises(ConfigError, match=r"expected \(9, 9\)"):
        whitened_svd(_matrix(), torch.eye(5), 2)
