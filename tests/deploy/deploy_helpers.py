"""Tiny nets and .rdz files of every method for the deploy tests (no zoo, no datasets)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from rdcompress.compress import (
    PruneConfig,
    PruneQuantizeConfig,
    QuantizeConfig,
    compress,
)
from rdcompress.compress.lowrank import LowRankConfig


def tiny_mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(36, 24), nn.ReLU(), nn.Linear(24, 10)).eval()


class TinyConvNet(nn.Module):
    """Conv (bias, padding) -> BN -> ReLU -> depthwise conv (groups) + residual -> conv
    without bias (reflect padding) -> Linear: every Conv2d variant the loaders must handle."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.reflect = nn.Conv2d(6, 4, 3, stride=2, padding=1, bias=False,
                                 padding_mode="reflect")
        self.head = nn.Linear(4 * 3 * 3, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, 1, 6, 6) -> (N, 10)
        hidden = torch.relu(self.bn(self.stem(x)))
        hidden = hidden + self.depthwise(hidden)
        return self.head(torch.relu(self.reflect(hidden)).flatten(1))


def tiny_conv(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = TinyConvNet()
    net.train()
    net(torch.randn(8, 1, 6, 6))  # move the BatchNorm statistics off their defaults
    return net.eval()


NETS = {"mlp": tiny_mlp, "conv": tiny_conv}
CONFIGS = {
    "quantize-k16": QuantizeConfig(clusters=16),
    "quantize-k4": QuantizeConfig(clusters=4),
    "quantize-k40": QuantizeConfig(clusters=40),
    "prune": PruneConfig(kept_fraction=0.3),
    "prune-quantize": PruneQuantizeConfig(kept_fraction=0.5, clusters=4),
    "lowrank": LowRankConfig(rank=2),
    "lowrank-quantized": LowRankConfig(rank=2, storage="quantized", clusters=8),
    "lowrank-float16": LowRankConfig(rank=3, storage="float16"),
}


def make_rdz(tmp_path: Path, net_name: str, config_name: str) -> tuple[nn.Module, Path]:
    """(the dense net, a .rdz of it compressed by CONFIGS[config_name])."""
    net = NETS[net_name]()
    path = tmp_path / f"{net_name}-{config_name}.rdz"
    compress(net, CONFIGS[config_name], None).save(path)
    return net, path


def example_input(seed: int = 5, batch: int = 7) -> torch.Tensor:
    return torch.randn(batch, 1, 6, 6, generator=torch.Generator().manual_seed(seed))


def make_dq_rdz(tmp_path: Path) -> tuple[nn.Module, Path]:
    """(tiny_mlp, a .rdz whose first Linear weight is a dependent-quantization entry, the
    others raw): an entry kind without a holder of its own in rdcompress.deploy."""
    from rdcompress.codec import RawTensor, write_rdz
    from rdcompress.codec.dq import DQTensor

    net = tiny_mlp()
    entries: list = []
    for name, tensor in net.state_dict().items():
        if name == "1.weight":
            levels = torch.round(tensor / 0.05).to(torch.int64).numpy()
            entries.append(DQTensor(name, tuple(tensor.shape), "float32", 0.05, levels, 36))
        else:
            entries.append(RawTensor(name, tensor))
    path = tmp_path / "dq.rdz"
    write_rdz(path, entries, {"model": None})
    return net, path
