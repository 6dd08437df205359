"""Tiny models and duck-typed importances for the compress tests (no zoo, no datasets)."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from rdcompress._io import state_dict_sha256


def tiny_net(dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 10),
    )
    net(torch.randn(3, 1, 6, 6))  # move the BatchNorm running statistics off their defaults
    return net.to(dtype).eval()


def fake_importance(model: nn.Module, objective: str = "gradient", quartic: bool = False,
                    seed: int = 1) -> SimpleNamespace:
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())

    def draw():
        return {n: torch.rand(p.shape, generator=gen) for n, p in params.items()}

    return SimpleNamespace(
        objective=objective, quadratic=draw(), quartic=draw() if quartic else None,
        weights_sha256=state_dict_sha256(params), temperature=None, num_samples=1, metadata={},
    )
