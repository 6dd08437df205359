"""Cost of the diagonal-Hessian estimators on a ResNet-20 (random weights, CIFAR-sized inputs).

Prints seconds per batch and the ratio to one ordinary forward+backward pass of the batch loss,
all measured side by side in one run, plus how far curvature propagation lands from "exact".
Not a test: asserts nothing about time.

    python bench/hessian.py [--samples 64] [--model resnet20] [--threads N] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from rdcompress.importance.hessian import accumulate_hessian
from rdcompress.models import build


def _timed(fn, repeats: int = 1):
    fn()  # warm-up (also fills the piecewise-linearity cache)
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    return (time.perf_counter() - start) / repeats, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.model).to(args.device).eval()
    inputs = torch.rand(args.samples, 3, 32, 32, device=args.device)
    targets = torch.randint(0, 10, (args.samples,), device=args.device)
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {params} parameters, {args.samples} samples, {args.device}, "
          f"{torch.get_num_threads()} threads")

    def forward_backward():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(inputs), targets).backward()

    base, _ = _timed(forward_backward, repeats=3)
    print(f"{'forward+backward':<34} {base:8.3f} s   1.0x")
    runs = [("exact", 1, False), ("exact", 1, True), ("curvature-propagation", 1, False),
            ("curvature-propagation", 2, True), ("curvature-propagation", 16, False),
            ("hutchinson", 1, False)]
    results = {}
    for method, probes, squares in runs:
        def run(method=method, probes=probes, squares=squares):
            return accumulate_hessian(model, inputs, targets, method=method, temperature=1.0,
                                      num_probes=probes, want_squares=squares,
                                      generator=torch.Generator().manual_seed(0))
        seconds, result = _timed(run)
        results[(method, probes, squares)] = result
        label = f"{method} K={probes}{' +squares' if squares else ''}"
        print(f"{label:<34} {seconds:8.3f} s {seconds / base:6.1f}x")
    exact = results[("exact", 1, False)][0]
    for probes in (1, 16):
        estimate = results[("curvature-propagation", probes, False)][0]
        num = sum(float((estimate[n] - exact[n]).pow(2).sum()) for n in exact)
        den = sum(float(exact[n].pow(2).sum()) for n in exact)
        print(f"curvature propagation K={probes}: relative L2 error vs exact "
              f"{(num / den) ** 0.5:.3f}")


if __name__ == "__main__":
    main()
