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
from rdcompress.compress.registry import Flag, MethodSpec, SweepAxis, per_layer, register
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


def _kept_fraction(value: float) -> bool:
    return 0.0 < value <= 1.0  # False for nan too


KEEP = Flag("--keep", "kept_fraction", float, aliases=("--ratio",),
            help="kept fraction of weights, in (0, 1]",
            required="--keep (the kept fraction, e.g. 0.1)",
            check=(_kept_fraction, "is outside (0, 1]; it is the kept fraction of weights, "
                                   "e.g. --keep 0.1 keeps 10%"))
SCOPE = Flag("--scope", "scope", choices=SCOPES,
             help="same kept fraction per layer (default, the paper's) or one global threshold "
                  "(with --structured: rows ranked by score per weight across layers, at least "
                  "one row kept per layer)")
STRUCTURED = Flag("--structured", "structured", None,
                  help="prune whole output neurons / conv channels")
KEPT_AXIS = SweepAxis("kept_fraction", (0.05, 0.1, 0.2, 0.3, 0.5), "--keep", float,
                      "pruning: kept fractions per layer", aliases=("--kept",))

register(MethodSpec(
    name="prune", config=PruneConfig, handler=per_layer(handle_prune), label="pruning",
    example={"kept_fraction": 0.5}, flags=(KEEP, SCOPE, STRUCTURED), sweep=KEPT_AXIS,
    setting=lambda config: f"kept={config.kept_fraction:g}",
    paper_ratio=lambda config, compressed, summary: config.kept_fraction,  # the paper's ratio
    style={"color": "tab:gray", "linestyle": "--"}, in_default_sweep=True,
))
