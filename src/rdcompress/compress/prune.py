"""Pruning by the objective's greedy score (paper §5.3 Corollary 1, §6): config + handler.

Each layer keeps its weights of largest score I·w² + H·w⁴ (``rdcompress.pruning``); the kept
values are stored exactly (``PrunedTensor``), pruned positions decode to 0.

scope × structured: "layer" keeps the fraction in every layer; "global" applies one threshold
to all layers' weights, or, structured, ranks all layers' slices (output units) by score per
weight and keeps at least one slice per layer (``pruning.structured_global_masks``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch

from rdcompress.compress._layers import LayerInput, LayerResult, pruned_result
from rdcompress.errors import ConfigError
from rdcompress.pruning import (
    check_fraction,
    global_masks,
    prune_scores,
    structured_global_masks,
    structured_mask,
    unstructured_mask,
)

SCOPES = ("layer", "global")


@dataclass
class PruneConfig:
    kept_fraction: float  # fraction of weights kept, in (0, 1]; counts round half up
    scope: str = "layer"  # "layer": each layer keeps the fraction (the paper's); "global": one
    #                       threshold over all compressed layers (structured: slices ranked by
    #                       score per weight across layers, >= 1 slice kept per layer)
    structured: bool = False  # prune whole slices along ``dim`` (output neurons / channels)
    dim: int = 0  # slice dimension for structured pruning (0 = output neurons / channels)

    method: ClassVar[str] = "prune"

    def __post_init__(self) -> None:
        check_fraction(self.kept_fraction)
        self.kept_fraction = float(self.kept_fraction)
        if self.scope not in SCOPES:
            raise ConfigError(f"scope={self.scope!r} is unknown; use one of {SCOPES}.")
        if isinstance(self.dim, bool) or not isinstance(self.dim, int):
            raise ConfigError(f"dim={self.dim!r} must be an integer.")

    def to_dict(self) -> dict:
        return {"method": self.method, **asdict(self)}


def prune_masks(layers: list[LayerInput], config: PruneConfig) -> dict[str, torch.Tensor]:
    """Bool masks (weight-shaped, True = kept) for every layer, by ``config``."""
    scores = {layer.name: prune_scores(layer.weight, layer.I, layer.H) for layer in layers}
    if config.scope == "global" and config.structured:
        return structured_global_masks(scores, config.kept_fraction, config.dim)
    if config.scope == "global":
        return global_masks(scores, config.kept_fraction)
    if config.structured:
        return {
            name: structured_mask(score, config.kept_fraction, config.dim)
            for name, score in scores.items()
        }
    return {name: unstructured_mask(score, config.kept_fraction) for name, score in scores.items()}


def handle_prune(layers: list[LayerInput], config: PruneConfig) -> dict[str, LayerResult]:
    masks = prune_masks(layers, config)
    return {layer.name: pruned_result(layer, masks[layer.name]) for layer in layers}
