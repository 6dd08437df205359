"""Prune, then quantize the survivors (Deep Compression's pipeline, without retraining).

Masks come from ``prune.prune_masks`` (greedy by I·w² + H·w⁴); each layer's kept weights get a
codebook (``quantize.quantize_layer``); the file stores the mask plus coded indices.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from rdcompress.compress._layers import LayerInput, LayerResult, quantized_result
from rdcompress.compress.prune import KEEP, KEPT_AXIS, SCOPE, STRUCTURED, PruneConfig, prune_masks
from rdcompress.compress.quantize import (
    ALGORITHM,
    BITS,
    CLUSTERS,
    LAM,
    QuantizeConfig,
    quantize_layer,
    sweep_quantizer,
    warn_ignored_quartic,
)
from rdcompress.compress.registry import Flag, MethodSpec, per_layer, register


@dataclass
class PruneQuantizeConfig:
    kept_fraction: float  # as PruneConfig
    clusters: int | None = None  # as QuantizeConfig (k for the kept weights)
    bits: int | None = None
    algorithm: str = "lloyd"
    lam: float = 0.0
    scope: str = "layer"
    structured: bool = False
    dim: int = 0
    init: str = "quantile"
    max_iter: int = 300

    method: ClassVar[str] = "prune+quantize"

    def __post_init__(self) -> None:
        self.prune  # noqa: B018 - validate both halves now
        self.quantize  # noqa: B018

    @property
    def prune(self) -> PruneConfig:
        return PruneConfig(self.kept_fraction, self.scope, self.structured, self.dim)

    @property
    def quantize(self) -> QuantizeConfig:
        return QuantizeConfig(self.clusters, self.bits, self.algorithm, self.lam, self.init,
                              self.max_iter)

    @property
    def k(self) -> int:
        return self.quantize.k

    def to_dict(self) -> dict:
        return {"method": self.method, **asdict(self), "k": self.k}


def handle_prune_quantize(
    layers: list[LayerInput], config: PruneQuantizeConfig
) -> dict[str, LayerResult]:
    quantize = config.quantize
    warn_ignored_quartic(layers, quantize.algorithm)
    masks = prune_masks(layers, config.prune)
    results = {}
    for layer in layers:
        mask = masks[layer.name]
        result = quantize_layer(layer, quantize, mask)
        results[layer.name] = quantized_result(layer, result, mask)
    return results


COMBINE_CLUSTERS = Flag("--combine-clusters", "clusters", int,
                        help="k of the quantizer of the combined methods (prune+quantize: the "
                             "kept weights; lowrank+quantize: each factor)")

register(MethodSpec(
    name="prune+quantize", config=PruneQuantizeConfig,
    handler=per_layer(handle_prune_quantize), label="prune + quantize",
    example={"kept_fraction": 0.5, "clusters": 4},
    flags=(KEEP, SCOPE, STRUCTURED, CLUSTERS, BITS, ALGORITHM, LAM), sweep=KEPT_AXIS,
    sweep_defaults={"clusters": 16, "algorithm": "lloyd"},
    sweep_options=(COMBINE_CLUSTERS, ALGORITHM), adapt=sweep_quantizer,
    setting=lambda config: f"kept={config.kept_fraction:g},k={config.k}",
    style={"color": "tab:purple", "linestyle": (0, (5, 1, 1, 1))},
))
