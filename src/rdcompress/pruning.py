"""Greedy pruning masks by the objective's score (paper §5.3 Corollary 1, §6): pure functions.

Pruning w_i (ŵ_i = 0) costs I_i w_i² + H_i w_i⁴ of the objective Σ I (w − ŵ)² + H (w − ŵ)⁴, and
these costs add up, so for a fixed number of kept weights the optimal mask keeps the largest
scores (Corollary 1). H is E[(∂²L/∂w²)²] / 4 for gradient+hessian (Table 2), else None.

Kept counts are exact: a kept fraction f of n items keeps ``kept_count(n, f)`` =
round-half-up(f · n), at least 1 and at most n. Ties are broken deterministically: among equal
scores the item with the lower row-major index (and, globally, the earlier layer) is kept.
Structured global pruning (``structured_global_masks``) keeps whole rows, so its kept count of
weights can exceed the target by less than one row.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from rdcompress.errors import ConfigError, NonFiniteError


def prune_scores(
    w: torch.Tensor, I: torch.Tensor | None = None, H: torch.Tensor | None = None
) -> torch.Tensor:
    """score = I · w² + H · w⁴ in float64, same shape as w (I None: ones; H None: 0)."""
    w64 = w.detach().to(torch.float64)
    w2 = w64 * w64
    score = w2 if I is None else I.detach().to(torch.float64) * w2
    if H is not None:
        score = score + H.detach().to(torch.float64) * w2 * w2
    return score


def kept_count(n: int, kept_fraction: float) -> int:
    """round-half-up(kept_fraction · n), clamped to [1, n]; kept_fraction in (0, 1]."""
    check_fraction(kept_fraction)
    return min(n, max(1, math.floor(kept_fraction * n + 0.5)))


def check_fraction(kept_fraction: float) -> None:
    if isinstance(kept_fraction, bool) or not isinstance(kept_fraction, (int, float)) or not (
        0.0 < kept_fraction <= 1.0
    ):
        raise ConfigError(
            f"kept_fraction={kept_fraction!r} is outside (0, 1]; it is the fraction of weights "
            f"kept, e.g. 0.1 keeps 10%."
        )


def unstructured_mask(scores: torch.Tensor, kept_fraction: float) -> torch.Tensor:
    """Keep the kept_count(numel, f) largest scores; bool mask of scores' shape (True = kept)."""
    _check_scores(scores, "scores")
    flat = scores.reshape(-1)
    return _top_mask(flat, kept_count(flat.numel(), kept_fraction)).reshape(scores.shape)


def global_masks(
    scores_by_layer: Mapping[str, torch.Tensor], kept_fraction: float
) -> dict[str, torch.Tensor]:
    """One threshold across layers: keep kept_count(total, f) largest scores of all layers.

    Layers are concatenated in the mapping's order, so ties favour earlier layers.
    """
    if not scores_by_layer:
        raise ConfigError("scores_by_layer is empty; pass at least one layer's scores.")
    for name, scores in scores_by_layer.items():
        _check_scores(scores, name)
    flat = torch.cat([s.detach().reshape(-1).to(torch.float64) for s in scores_by_layer.values()])
    kept = _top_mask(flat, kept_count(flat.numel(), kept_fraction))
    masks, offset = {}, 0
    for name, scores in scores_by_layer.items():
        masks[name] = kept[offset : offset + scores.numel()].reshape(scores.shape)
        offset += scores.numel()
    return masks


def structured_mask(scores: torch.Tensor, kept_fraction: float, dim: int = 0) -> torch.Tensor:
    """Keep whole slices along ``dim`` (output neurons / conv channels for dim = 0).

    A slice's score is the sum of its weights' scores (the objective lost by zeroing it); the
    kept_count(scores.shape[dim], f) best slices are kept. Returns a bool mask of scores' shape.
    """
    _check_scores(scores, "scores")
    slice_scores = _slice_sums(scores, dim, "scores")  # (n_slices,)
    kept = _top_mask(slice_scores, kept_count(slice_scores.numel(), kept_fraction))  # (n_slices,)
    return _expand(kept, scores.shape, dim % scores.ndim)


def structured_global_masks(
    scores_by_layer: Mapping[str, torch.Tensor], kept_fraction: float, dim: int = 0
) -> dict[str, torch.Tensor]:
    """Keep whole slices along ``dim`` (rows = output units for dim = 0) ranked across layers.

    Ranking: a slice is worth its summed score s (the objective lost by zeroing it) and costs
    its number of weights n, so slices are ranked by the score DENSITY s / n. Why not the raw
    sum: the budget is counted in weights, so this is a knapsack (keep max Σ s subject to
    Σ n <= budget) whose greedy order is s / n; it is also the Lagrangian rule "keep a slice iff
    s > λ n", the same one global threshold λ as unstructured global pruning (where n = 1).
    The raw sum would favour the long rows of wide layers merely for being long. Within one
    layer all slices have the same n, so the order there equals the per-layer one.

    Selection: first every layer keeps its best slice (the guard: no layer is ever emptied, a
    layer without outputs would cut the network), then slices are added in descending density
    until the kept weights reach kept_count(total weights, f); the last slice can overshoot the
    target by less than its length, and the guard alone can overshoot it when f is tiny.
    The kept set is then optimal: no set of slices with at least one per layer and no more
    weights keeps a larger total score (the density prefix fills its own budget exactly, so
    the fractional knapsack bound is attained). Ties go to the earlier layer, then the lower
    slice index. Returns bool masks (True = kept) of each layer's shape.
    """
    if not scores_by_layer:
        raise ConfigError("scores_by_layer is empty; pass at least one layer's scores.")
    slice_scores, lengths = [], []  # per layer: (n_slices,) float64 sums, slice length
    for name, scores in scores_by_layer.items():
        _check_scores(scores, name)
        summed = _slice_sums(scores, dim, name)
        slice_scores.append(summed)
        lengths.append(scores.numel() // summed.numel())
    length = torch.cat([torch.full((s.numel(),), n, dtype=torch.int64)
                        for s, n in zip(slice_scores, lengths, strict=True)])  # (S,) all slices
    density = torch.cat([s / n for s, n in zip(slice_scores, lengths, strict=True)])  # (S,)
    starts = torch.tensor([0] + [s.numel() for s in slice_scores]).cumsum(0)  # (L + 1,)
    kept = torch.zeros(density.numel(), dtype=torch.bool)
    for first, last in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
        kept[first + int(torch.argmax(density[first:last]))] = True  # the guard (first max)
    total = sum(scores.numel() for scores in scores_by_layer.values())
    target = kept_count(total, kept_fraction)  # weights
    order = torch.sort(density, descending=True, stable=True).indices  # (S,)
    order = order[~kept[order]]  # the guard's slices are already in
    budget_left = target - int(length[kept].sum())
    if budget_left > 0:
        # Add slices while the kept weights are below the target: the first prefix whose
        # cumulative length reaches budget_left.
        reach = torch.cumsum(length[order], 0)  # (S − L,)
        count = int(torch.searchsorted(reach, torch.tensor([budget_left]))[0]) + 1
        kept[order[:count]] = True
    masks = {}
    for (name, scores), first, last in zip(scores_by_layer.items(), starts[:-1].tolist(),
                                           starts[1:].tolist(), strict=True):
        masks[name] = _expand(kept[first:last], scores.shape, dim % scores.ndim)
    return masks


def _slice_sums(scores: torch.Tensor, dim: int, name: str) -> torch.Tensor:
    """Summed scores of the slices along ``dim``: (scores.shape[dim],) float64."""
    if scores.ndim == 0 or not -scores.ndim <= dim < scores.ndim:
        raise ConfigError(f"dim={dim} is invalid for {name!r} scores of shape "
                          f"{tuple(scores.shape)}; structured pruning needs a tensor with "
                          f"that dimension.")
    dim = dim % scores.ndim
    other = [d for d in range(scores.ndim) if d != dim]
    return scores.to(torch.float64).sum(dim=other) if other else scores.to(torch.float64)


def _expand(kept: torch.Tensor, shape: torch.Size, dim: int) -> torch.Tensor:
    """A per-slice mask (shape[dim],) broadcast to a full mask of ``shape``."""
    view = [1] * len(shape)
    view[dim] = -1
    return kept.reshape(view).expand(shape).clone()


def _top_mask(flat: torch.Tensor, count: int) -> torch.Tensor:
    """Mask (n,) keeping ``count`` largest entries; ties go to the lower index (stable sort)."""
    order = torch.sort(flat, descending=True, stable=True).indices
    mask = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    mask[order[:count]] = True
    return mask


def _check_scores(scores: torch.Tensor, name: str) -> None:
    if not torch.is_tensor(scores):
        raise ConfigError(f"scores for {name!r} is a {type(scores).__name__}; expected a tensor.")
    if scores.numel() == 0:
        raise ConfigError(f"scores for {name!r} are empty; nothing to prune.")
    if not torch.isfinite(scores).all():
        raise NonFiniteError(f"scores for {name!r} contain NaN or inf; check weights/importance.")
