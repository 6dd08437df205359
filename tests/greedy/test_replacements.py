"""replacements.py: unbiasedness (exact, from the two outcomes), variance, the M/k error bound."""

from __future__ import annotations

import pytest
import torch

from rdcompress.greedy.replacements import (
    draw,
    prune_outcomes,
    rounding_grid,
    rounding_indices,
    rounding_outcomes,
    unit_index,
)


def _weights(seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(7, 5, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.999, 1.0])
def test_pruning_is_unbiased_with_the_closed_form_variance(p):
    w = _weights()
    outcomes = prune_outcomes(w, p, unit_index(tuple(w.shape), None))
    assert torch.equal(outcomes.low, torch.zeros_like(w))
    torch.testing.assert_close(outcomes.mean(), w, rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(outcomes.variance(), w * w * (1 - p) / p, rtol=1e-12, atol=0)


def test_structured_pruning_draws_one_bernoulli_per_row():
    w = _weights()
    units = unit_index(tuple(w.shape), 0)  # rows
    assert units.reshape(7, 5).eq(torch.arange(7).unsqueeze(1)).all()
    outcomes = prune_outcomes(w, 0.4, units)
    assert outcomes.q.shape == (7,)
    columns = unit_index(tuple(w.shape), 1)
    assert columns.reshape(7, 5).eq(torch.arange(5).unsqueeze(0)).all()
    conv_units = unit_index((4, 3, 2, 2), 0)
    assert conv_units.reshape(4, 12).eq(torch.arange(4).unsqueeze(1)).all()


@pytest.mark.parametrize("k", [1, 2, 3, 7, 16])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_stochastic_rounding_is_unbiased_within_m_over_k(k, dtype):
    w = _weights(1, dtype)
    bound = float(w.abs().max())
    levels = rounding_grid(bound, k, dtype)
    assert levels.numel() == 2 * k + 1
    assert levels[0] == -levels[-1] == -w.abs().max() and levels[k] == 0
    spacing = torch.diff(levels.double())
    torch.testing.assert_close(spacing, torch.full_like(spacing, bound / k), rtol=1e-6, atol=0)
    outcomes = rounding_outcomes(w, levels)
    wd = w.double()
    # exact expectation from the two outcomes: low + q (high − low) = w
    torch.testing.assert_close(outcomes.mean(), wd, rtol=0, atol=1e-14 * bound)
    assert (outcomes.low <= w).all() and (outcomes.high >= w).all()
    for value in (outcomes.low, outcomes.high):  # both outcomes lie on the grid, within M/k
        assert torch.isin(value.reshape(-1), levels).all()
        assert ((value.double() - wd).abs() <= bound / k * (1 + 1e-6)).all()
    closed = (outcomes.high.double() - wd) * (wd - outcomes.low.double())  # (hi − w)(w − lo)
    torch.testing.assert_close(outcomes.variance(), closed, rtol=1e-9, atol=1e-15)
    index = rounding_indices(outcomes.high.reshape(-1), levels)
    assert torch.equal(levels[index], outcomes.high.reshape(-1))


def test_a_weight_on_a_level_is_left_where_it_is():
    levels = rounding_grid(2.0, 2, torch.float64)  # -2 -1 0 1 2
    w = torch.tensor([-2.0, -1.0, 0.0, 0.5, 2.0])
    outcomes = rounding_outcomes(w, levels)
    assert torch.equal(outcomes.variance()[[0, 1, 2, 4]], torch.zeros(4, dtype=torch.float64))
    assert outcomes.low[3] == 0.0 and outcomes.high[3] == 1.0 and outcomes.q[3] == 0.5


def test_draws_average_to_the_weight():
    w = torch.tensor([0.3, -1.1, 2.0])
    outcomes = prune_outcomes(w, 0.25, torch.arange(3))
    generator = torch.Generator().manual_seed(3)
    units = torch.arange(3).repeat(20000)
    high = draw(outcomes, units, generator).reshape(20000, 3)
    values = torch.where(high, outcomes.high, outcomes.low)
    # mean of 20000 draws: standard error ≤ |w|·sqrt(3)/sqrt(20000) ≈ 0.012·|w|
    torch.testing.assert_close(values.mean(0), w, rtol=0.05, atol=0)
