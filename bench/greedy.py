"""Fast (second-order) vs exact greedy score: time per refresh and ranking agreement.

    nice -n 5 python bench/greedy.py

For random-init ReLU MLPs 64-W-W-10 on 256 random inputs, scores every weight of the middle
(W, W) layer once with both scores (pruning, p = 0.3) and prints the time ratio, measured side
by side in one run, and the Spearman correlation of the two scores. Then, for ResNet-20 conv
layers (random init, 128 random CIFAR-sized inputs, one thread), the Conv2d Hessian-diagonal
kernel of the fast score against the torch.func fallback it replaced. Never asserts on time.
"""

from __future__ import annotations

import time

import torch

from rdcompress.greedy.curvature import (
    _conv_kernel,
    _func_kernel,
    hessian_diagonal,
    owner,
    second_order_scores,
)
from rdcompress.greedy.exact import exact_scores
from rdcompress.greedy.replacements import prune_outcomes, unit_index
from rdcompress.models.mlp import MLP


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def main() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    print(f"{'width':>6} {'weights':>8} {'exact s':>9} {'fast s':>9} {'ratio':>8} {'spearman':>9}")
    for width in (16, 32, 64):
        model = MLP(64, (width, width), 10).eval()
        name = "layers.3.weight"
        w = model.get_parameter(name).detach()
        outcomes = prune_outcomes(w, 0.3, unit_index(tuple(w.shape), None))
        units = torch.arange(w.numel())
        start = time.perf_counter()
        exact = exact_scores(model, name, outcomes, units, x, y, "cross-entropy")
        exact_s = time.perf_counter() - start
        start = time.perf_counter()
        fast = second_order_scores(hessian_diagonal(model, name, x, "cross-entropy"), outcomes,
                                   units)
        fast_s = time.perf_counter() - start
        print(f"{width:>6} {w.numel():>8} {exact_s:>9.3f} {fast_s:>9.4f} "
              f"{exact_s / fast_s:>8.0f} {_spearman(exact, fast):>9.3f}")
    _conv_kernels()


def _conv_kernels() -> None:
    from rdcompress.models import build

    torch.set_num_threads(1)
    net = build("resnet20").eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.randn(128, 3, 32, 32)
    print(f"\n{'ResNet-20 layer':<24} {'conv kernel s':>13} {'torch.func s':>12} {'ratio':>6} "
          f"{'max rel diff':>12}")
    for name in ("conv1.weight", "layer1.0.conv1.weight", "layer2.0.conv1.weight",
                 "layer3.2.conv2.weight"):
        module, _ = owner(net, name)
        start = time.perf_counter()
        kernel = _conv_kernel(net, module, name, x, "cross-entropy")
        kernel_s = time.perf_counter() - start
        start = time.perf_counter()
        fallback = _func_kernel(net, name, x, "cross-entropy")
        fallback_s = time.perf_counter() - start
        assert kernel is not None
        diff = float((kernel - fallback).abs().max() / fallback.abs().max())
        print(f"{name:<24} {kernel_s:>13.2f} {fallback_s:>12.2f} {fallback_s / kernel_s:>6.1f} "
              f"{diff:>12.1e}")


if __name__ == "__main__":
    main()
