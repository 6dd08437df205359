"""Fast (second-order) vs exact greedy score: time per refresh and ranking agreement.

    nice -n 5 python bench/greedy.py

For random-init ReLU MLPs 64-W-W-10 on 256 random inputs, scores every weight of the middle
(W, W) layer once with both scores (pruning, p = 0.3) and prints the time ratio, measured side
by side in one run, and the Spearman correlation of the two scores. Never asserts on time.
"""

from __future__ import annotations

import time

import torch

from rdcompress.greedy.curvature import hessian_diagonal, second_order_scores
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


if __name__ == "__main__":
    main()
