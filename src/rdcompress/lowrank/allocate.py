"""Per-layer ranks at a global parameter budget, chosen by the objective's distortion.

Each layer l with a weight (out, d) has options: rank r = 1..R_l, costing r·(out + d) numbers,
where R_l = ``max_useful_rank`` (the largest rank still cheaper than the dense layer), or the
dense layer itself, costing out·d with distortion 0. ``distortion_curve`` gives D_l(r) =
Σ I ⊙ (W − A_r B_r)² for the prefixes of one factorization (SVD-like metrics are nested: the
rank-r fit is the first r columns of the rank-R fit).

``allocate_ranks`` is the classical convex-hull greedy of bit allocation: on the lower convex
hull of each layer's (cost, D) points, take the step with the largest distortion decrease per
number until the budget is spent; a step that does not fit freezes its layer. Every state the
greedy passes through minimizes D + λ·cost for some λ, so it is optimal for the cost it uses;
the result is at least as good as the exact optimum at (budget − the largest single step).

The budget counts numbers, not bytes. ``compress.lowrank`` stores a dense layer in the same
precision as the factors (float32, float16, or a codebook with the same k), so a number costs
the same in every option and the count is proportional to the raw bytes; what it leaves out is
per-part overhead (headers, a codebook per factor) and, for quantized storage, the entropy coder
spending a little more or less per index in one layer than in another. The file ratio a sweep
reports is always measured on the written file.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from itertools import pairwise

import torch

from rdcompress.errors import ConfigError
from rdcompress.lowrank.factorize import max_useful_rank

DENSE = None  # the rank value meaning "keep this layer dense"


def distortion_curve(W: torch.Tensor, I: torch.Tensor, A: torch.Tensor, B: torch.Tensor
                     ) -> torch.Tensor:
    """(R + 1,) float64: D(r) = Σ I ⊙ (W − A[:, :r] B[:r])² for r = 0..R; W, I (out, d)."""
    error = W.to(torch.float64).clone()  # (out, d)
    I = I.to(torch.float64)
    curve = [float((I * error * error).sum())]
    for k in range(A.shape[1]):
        error -= torch.outer(A[:, k], B[k])
        curve.append(float((I * error * error).sum()))
    return torch.tensor(curve, dtype=torch.float64)


def layer_cost(shape: tuple[int, int], rank: int | None) -> int:
    """Numbers stored for a layer of matrix shape (out, d) at ``rank`` (None = dense)."""
    out, d = shape
    return out * d if rank is DENSE else rank * (out + d)


def uniform_ranks(shapes: Mapping[str, tuple[int, int]], ratio: float) -> dict[str, int | None]:
    """Every layer keeps about ``ratio`` of its numbers: r = max(1, ⌊ratio·out·d/(out+d)⌋),
    dense when that rank is not cheaper than the dense layer or when ratio = 1."""
    ranks: dict[str, int | None] = {}
    for name, (out, d) in shapes.items():
        rank = max(1, int(ratio * out * d / (out + d)))
        fits_dense = ratio >= 1  # the dense layer itself is within budget: exact and no dearer
        ranks[name] = rank if rank <= max_useful_rank(out, d) and not fits_dense else DENSE
    return ranks


def _hull_steps(costs: list[int], values: list[float]) -> list[tuple[int, int, float]]:
    """Steps (option index reached, Δcost, ΔD) along the lower convex hull, slopes falling."""
    hull = [0]
    for i in range(1, len(costs)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # drop b when it lies on or above the segment a -> i
            cross = (values[b] - values[a]) * (costs[i] - costs[a]) \
                - (values[i] - values[a]) * (costs[b] - costs[a])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return [(j, costs[j] - costs[i], values[i] - values[j]) for i, j in pairwise(hull)]


def allocate_ranks(curves: Mapping[str, torch.Tensor], shapes: Mapping[str, tuple[int, int]],
                   budget: float) -> dict[str, int | None]:
    """Ranks (None = dense) minimizing Σ D_l subject to Σ cost_l ≤ ``budget`` (numbers).

    ``curves[name]`` holds D(r) for r = 0..R with R >= max_useful_rank(out, d) (longer curves
    are cut). Every layer gets rank >= 1; a budget below Σ (out + d) is a ConfigError.
    """
    if set(curves) != set(shapes):
        raise ConfigError(f"curves and shapes name different layers: {sorted(curves)} vs "
                          f"{sorted(shapes)}.")
    options: dict[str, list[int | None]] = {}
    heap: list[tuple[float, str, int, list]] = []
    chosen: dict[str, int] = {}
    spent = 0
    for name, shape in shapes.items():
        top = max_useful_rank(*shape)
        curve = curves[name]
        if len(curve) < top + 1:
            raise ConfigError(f"the distortion curve of {name!r} has {len(curve)} points; it "
                              f"needs ranks 0..{top} ({top + 1} points).")
        options[name] = [*range(1, top + 1), DENSE]
        costs = [layer_cost(shape, r) for r in options[name]]
        values = [float(curve[r]) for r in range(1, top + 1)] + [0.0]
        steps = _hull_steps(costs, values)
        chosen[name] = 0
        spent += costs[0]
        if steps:
            _push(heap, name, steps, 0)
    if spent > budget:
        raise ConfigError(f"budget={budget:.0f} numbers is below {spent}, the cost of rank 1 in "
                          "every layer; raise the ratio or compress fewer layers.")
    while heap:
        _, name, position, steps = heapq.heappop(heap)
        reached, delta_cost, _ = steps[position]
        if spent + delta_cost > budget:
            continue  # frozen: its later steps are dearer per unit of distortion anyway
        spent += delta_cost
        chosen[name] = reached
        if position + 1 < len(steps):
            _push(heap, name, steps, position + 1)
    return {name: options[name][index] for name, index in chosen.items()}


def _push(heap: list, name: str, steps: list, position: int) -> None:
    _, delta_cost, delta_value = steps[position]
    heapq.heappush(heap, (-delta_value / delta_cost, name, position, steps))
