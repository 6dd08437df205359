"""LeNet-5 in Caffe's layout (``examples/mnist/lenet.prototxt``): the network of the compression
literature's LeNet-5 records (Deep Compression, soft weight-sharing, Bayesian compression)."""

from __future__ import annotations

import torch
from torch import nn


class LeNet5Caffe(nn.Module):
    """Input (N, 1, 28, 28) (MNIST, normalized); out: logits (N, 10). 431,080 parameters.

    conv1 Conv(1,20,5) -> max-pool 2 -> conv2 Conv(20,50,5) -> max-pool 2 -> fc1 Linear(800,500)
    ReLU -> fc2 Linear(500,10). As in Caffe's prototxt, the convolutions have no ReLU (only
    max-pooling); the spatial sizes are 28 -> 24 -> 12 -> 8 -> 4, so fc1 sees 50·4·4 = 800.
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, kernel_size=5)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.fc1 = nn.Linear(50 * 4 * 4, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N,1,28,28) -> (N,10)
        out = nn.functional.max_pool2d(self.conv1(x), 2)  # (N, 20, 12, 12)
        out = nn.functional.max_pool2d(self.conv2(out), 2)  # (N, 50, 4, 4)
        out = torch.relu(self.fc1(out.flatten(1)))  # (N, 500)
        return self.fc2(out)
