"""Fully connected classifiers: the paper's MNIST net, LeNet-300-100, and a small digits MLP."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class MLP(nn.Module):
    """Flatten -> [Linear -> ReLU -> Dropout] * len(hidden) -> Linear (logits).

    The paper's MNIST net (§6) is ``MLP(784, (256, 256), 10, dropout=0.2)``.
    Parameters are named ``layers.<i>.weight`` in one ``nn.Sequential``.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        modules: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for size in hidden:
            modules += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                modules.append(nn.Dropout(dropout))
            width = size
        modules.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, ...) -> (N, num_classes)
        return self.layers(x)


def mnist_mlp(num_classes: int = 10, dropout: float = 0.2) -> MLP:
    """The paper's MNIST net: 784-256-256-10, ReLU, dropout 0.2."""
    return MLP(784, (256, 256), num_classes, dropout=dropout)


def lenet_300_100(num_classes: int = 10) -> MLP:
    """LeNet-300-100 (LeCun et al. 1998; the Deep Compression benchmark)."""
    return MLP(784, (300, 100), num_classes)


def digits_mlp(num_classes: int = 10, hidden: Sequence[int] = (128, 128),
               dropout: float = 0.1) -> MLP:
    """A small MLP for scikit-learn's 8x8 digits: 64-128-128-10 (26k weights)."""
    return MLP(64, tuple(hidden), num_classes, dropout=dropout)
