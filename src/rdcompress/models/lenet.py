"""LeNet-5 with ReLU, in the layout of the common PyTorch MNIST checkpoints (``convnet.c1`` ...)."""

from __future__ import annotations

import torch
from torch import nn


class LeNet5(nn.Module):
    """Input (N, 1, 32, 32) in [0, 1] (MNIST resized bilinearly from 28x28); out: log-probs.

    c1 Conv(1,6,5) ReLU, s2 max-pool 2, c3 Conv(6,16,5) ReLU, s4 max-pool 2, c5 Conv(16,120,5) ReLU,
    f6 Linear(120,84) ReLU, f7 Linear(84,10), LogSoftmax. Log-probabilities are valid logits:
    softmax(log p) = p, so every rdcompress metric treats them as logits.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.convnet = nn.Sequential()
        self.convnet.add_module("c1", nn.Conv2d(1, 6, kernel_size=5))
        self.convnet.add_module("relu1", nn.ReLU())
        self.convnet.add_module("s2", nn.MaxPool2d(kernel_size=2, stride=2))
        self.convnet.add_module("c3", nn.Conv2d(6, 16, kernel_size=5))
        self.convnet.add_module("relu3", nn.ReLU())
        self.convnet.add_module("s4", nn.MaxPool2d(kernel_size=2, stride=2))
        self.convnet.add_module("c5", nn.Conv2d(16, 120, kernel_size=5))
        self.convnet.add_module("relu5", nn.ReLU())
        self.fc = nn.Sequential()
        self.fc.add_module("f6", nn.Linear(120, 84))
        self.fc.add_module("relu6", nn.ReLU())
        self.fc.add_module("f7", nn.Linear(84, num_classes))
        self.fc.add_module("sig7", nn.LogSoftmax(dim=-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N,1,32,32) -> (N,10)
        features = self.convnet(x)  # (N, 120, 1, 1)
        return self.fc(features.flatten(1))
