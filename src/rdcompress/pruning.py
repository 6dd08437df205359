"""Greedy pruning masks by the objective's score (paper §5.3 Corollary 1, §6): pure functions.

Pruning w_i (ŵ_i = 0) costs I_i w_i² + H_i w_i⁴ of the objective Σ I (w − ŵ)² + H (w − ŵ)⁴, and
these costs add up, so for a fixed number of kept weights the optimal mask keeps the largest
scores (Corollary 1). H is E[(∂²L/∂w²)²] / 4 for gradient+hessian (Table 2), else None.

Kept counts are exact: a kept fraction f of n items keeps ``kept_count(n, f)`` =
round-half-up(f · n), at least 1 and at most n. Ties are broken deterministically: among equal
scores the item with the lower row-major index (and, globally, the earlier layer) is kept.
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
    if scores.ndim == 0 or not -scores.ndim <= dim < scores.ndim:
        raise ConfigError(f"dim={dim} is invalid for scores of shape {tuple(scores.shape)}.")
    dim = dim % scores.ndim
    other = [d for d in range(scores.ndim) if d != dim]
    slice_scores = scores.to(torch.float64).sum(dim=other) if other else scores.to(torch.float64)
    kept = _top_mask(slice_scores, kept_count(slice_scores.numel(), kept_fraction))  # (n_slices,)
    view = [1] * scores.ndim
    view[dim] = -1
    return kept.reshape(view).expand(scores.shape).clone()


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
