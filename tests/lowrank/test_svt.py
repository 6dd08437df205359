"""Singular value thresholding: the projection's closed forms, the schedule, a tiny training run."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rdcompress.errors import ConfigError
from rdcompress.lowrank import (
    LowRankLinear,
    SVTConfig,
    fwsvd,
    oneshot_finetune,
    rank_schedule,
    svt_finetune,
    threshold_singular_values,
    truncated_svd,
)


def test_hard_threshold_is_truncated_svd():
    W = torch.randn(7, 5, dtype=torch.float64)
    A, B = truncated_svd(W, 2)
    torch.testing.assert_close(threshold_singular_values(W, 2, "hard"), A @ B)


def test_soft_threshold_shrinks_by_the_first_dropped_value():
    W = torch.randn(7, 5, dtype=torch.float64)
    s = torch.linalg.svdvals(W)
    out = torch.linalg.svdvals(threshold_singular_values(W, 2, "soft"))
    torch.testing.assert_close(out[:2], s[:2] - s[2])
    assert float(out[2:].abs().max()) < 1e-10


def test_fisher_weighted_threshold_is_fwsvd():
    W = torch.randn(6, 8, dtype=torch.float64)
    I = torch.rand(6, 8, dtype=torch.float64)
    rows = I.sum(1).sqrt()
    A, B = fwsvd(W, I, 3)
    torch.testing.assert_close(threshold_singular_values(W, 3, "hard", rows), A @ B)


def test_rank_schedule_falls_linearly_and_holds():
    ranks = [rank_schedule(10, 2, step, 8) for step in range(12)]
    assert ranks == [10, 9, 8, 7, 6, 5, 4, 3, 2, 2, 2, 2]
    assert rank_schedule(10, 2, 0, 0) == 2


def test_bad_configs():
    with pytest.raises(ConfigError, match="threshold"):
        SVTConfig(threshold="medium")
    with pytest.raises(ConfigError, match="decay_fraction"):
        SVTConfig(decay_fraction=1.5)


def _task(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 10, generator=gen)
    teacher = torch.randn(10, 3, generator=gen)
    y = (x @ teacher).argmax(1)
    loader = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 3))
    return net, loader, x, y


@pytest.mark.parametrize("threshold, decay", [("hard", 0.5), ("soft", 0.5), ("hard", 0.0)])
def test_svt_ends_at_the_target_rank_and_learns(threshold, decay):
    net, loader, x, y = _task()
    config = SVTConfig(steps=60, lr=0.05, threshold=threshold, decay_fraction=decay)
    tuned, losses = svt_finetune(net, loader, {"0.weight": 2}, config)
    assert int(torch.linalg.matrix_rank(tuned[0].weight.detach().double(), rtol=1e-6)) <= 2
    assert torch.equal(net[2].weight, _task()[0][2].weight)  # the original is untouched
    assert len(losses) == 60 and losses[-1] < losses[0]


def test_oneshot_finetune_trains_factorized_modules():
    net, loader, x, y = _task()
    tuned, losses = oneshot_finetune(net, loader, {"0.weight": 2}, SVTConfig(steps=40, lr=0.05))
    assert isinstance(tuned[0], LowRankLinear) and tuned[0].rank == 2
    assert losses[-1] < losses[0]
