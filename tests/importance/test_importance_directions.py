"""Output-space directions: their outer products sum to the logit-space matrices they factor."""

from __future__ import annotations

import pytest
import torch

from rdcompress.importance.directions import fisher_directions, softmax_probs


@pytest.mark.parametrize("scale", [0.5, 3.0, 1e3])  # 1e3: most probabilities underflow to 0
def test_fisher_directions_factor_the_logit_fisher(scale):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 5, generator=gen, dtype=torch.float64) * scale
    temperature = 1.7
    directions = list(fisher_directions(logits, temperature))
    assert len(directions) == 4  # C - 1: the Fisher annihilates the all-ones vector
    got = sum(torch.einsum("nc,nd->ncd", u, u) for u in directions)
    p = softmax_probs(logits, temperature)
    expected = (torch.diag_embed(p) - p[:, :, None] * p[:, None, :]) / temperature ** 2
    assert all(torch.isfinite(u).all() for u in directions)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-14)


def test_fisher_directions_match_the_definition_sum():
    """sum_k (a . u_k)^2 = sum_c p_c (a . (e_c - p))^2 / T^2 for any output-space vector a."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    a = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    p = softmax_probs(logits, 1.0)
    definition = (p * (a - (a * p).sum(1, keepdim=True)) ** 2).sum(1)
    factored = sum(((a * u).sum(1)) ** 2 for u in fisher_directions(logits, 1.0))
    torch.testing.assert_close(factored, definition, rtol=1e-12, atol=0)


def test_one_class_gives_one_zero_direction():
    directions = list(fisher_directions(torch.randn(3, 1), 1.0))
    assert len(directions) == 1 and float(directions[0].abs().max()) == 0


def test_logit_hessian_factor_has_c_minus_one_finite_columns():
    from rdcompress.importance.curvature import logit_hessian_factor

    logits = torch.tensor([[0.3, -1.2, 2.0, 0.0], [900.0, 0.0, -900.0, 1.0]], dtype=torch.float64)
    factor = logit_hessian_factor(logits, 2.0)
    assert factor.shape == (2, 4, 3) and torch.isfinite(factor).all()
    p = softmax_probs(logits, 2.0)
    expected = (torch.diag_embed(p) - p[:, :, None] * p[:, None, :]) / 4.0
    torch.testing.assert_close(factor @ factor.transpose(1, 2), expected, rtol=0, atol=1e-15)
