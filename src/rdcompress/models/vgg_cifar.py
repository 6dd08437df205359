"""The VGG-like CIFAR net of the paper's experiments (pytorch-playground's ``cifar10`` model).

128-128-M-256-256-M-512-512-M-1024-M: 3x3 convs with BatchNorm and ReLU; the last conv has no
padding (4x4 -> 2x2), the last max-pool leaves 1x1, and one Linear(8*width, classes) follows.
``width`` is the first layer's channel count (128 in the paper); smaller widths train on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn


class CifarVGG(nn.Module):
    def __init__(self, width: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        plan: list[tuple[int, int] | str] = [
            (width, 1), (width, 1), "M",
            (2 * width, 1), (2 * width, 1), "M",
            (4 * width, 1), (4 * width, 1), "M",
            (8 * width, 0), "M",
        ]
        layers: list[nn.Module] = []
        channels = 3
        for item in plan:
            if isinstance(item, str):  # "M"
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            out_channels, padding = item
            layers += [nn.Conv2d(channels, out_channels, 3, padding=padding),
                       nn.BatchNorm2d(out_channels, affine=False), nn.ReLU()]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(8 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N,3,32,32) -> (N,num_classes)
        return self.classifier(self.features(x).flatten(1))
