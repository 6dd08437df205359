"""Importance-weighted quantization of each layer (paper §5.3 Corollary 2, §6, App. C.2).

Every compressed layer gets its own codebook of k centroids, found by one of the quantizers of
``rdcompress.quantize``; indices are entropy-coded by the codec (``QuantizedTensor``).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch

from rdcompress.compress._layers import LayerInput, LayerResult, quantized_result, run_quantizer
from rdcompress.compress.registry import Flag, MethodSpec, SweepAxis, per_layer, register
from rdcompress.errors import ConfigError
from rdcompress.quantize import QuantizationResult

ALGORITHMS = ("lloyd", "quartic", "optimal", "entropy")
MAX_BITS = 16


@dataclass
class QuantizeConfig:
    clusters: int | None = None  # k centroids per layer; or give ``bits`` (k = 2**bits)
    bits: int | None = None  # index bits before entropy coding, 1..16
    algorithm: str = "lloyd"  # "lloyd" (weighted k-means, the paper's), "quartic" (Algorithm 2,
    #                           uses H), "optimal" (exact DP, uses H), "entropy" (ECSQ, uses lam)
    lam: float = 0.0  # ECSQ rate weight: objective units per bit (algorithm="entropy" only)
    init: str = "quantile"  # Lloyd initialization: "quantile", "uniform" or "random"
    max_iter: int = 300  # Lloyd/ECSQ iteration cap

    method: ClassVar[str] = "quantize"

    def __post_init__(self) -> None:
        if (self.clusters is None) == (self.bits is None):
            raise ConfigError(
                f"give exactly one of clusters (k) or bits (k = 2**bits); got clusters="
                f"{self.clusters!r}, bits={self.bits!r}."
            )
        if self.bits is not None and not (_is_int(self.bits) and 1 <= self.bits <= MAX_BITS):
            raise ConfigError(f"bits={self.bits!r} must be an integer in [1, {MAX_BITS}].")
        if self.clusters is not None and not (_is_int(self.clusters) and self.clusters >= 1):
            raise ConfigError(f"clusters={self.clusters!r} must be an integer >= 1.")
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm={self.algorithm!r} is unknown; use one of {ALGORITHMS}.")
        if not (isinstance(self.lam, (int, float)) and self.lam >= 0 and self.lam < float("inf")):
            raise ConfigError(f"lam={self.lam!r} must be a finite number >= 0.")
        if self.lam > 0 and self.algorithm != "entropy":
            raise ConfigError(f"lam={self.lam} only applies to algorithm='entropy', not "
                              f"{self.algorithm!r}.")
        if self.init not in ("quantile", "uniform", "random"):
            raise ConfigError(f"init={self.init!r}; use 'quantile', 'uniform' or 'random'.")
        if not (_is_int(self.max_iter) and self.max_iter >= 1):
            raise ConfigError(f"max_iter={self.max_iter!r} must be an integer >= 1.")

    @property
    def k(self) -> int:
        return int(self.clusters) if self.clusters is not None else 2 ** int(self.bits or 0)

    def to_dict(self) -> dict:
        return {"method": self.method, **asdict(self), "k": self.k}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def warn_ignored_quartic(layers: list[LayerInput], algorithm: str) -> None:
    if algorithm == "lloyd" and any(layer.H is not None for layer in layers):
        warnings.warn(
            f"the importance has a quartic term (gradient+hessian) but algorithm={algorithm!r} "
            "minimizes the quadratic part only; use algorithm='quartic' or 'optimal' to "
            "minimize both (the reported distortion includes it either way).",
            stacklevel=4,  # warn -> handler -> compress -> the caller
        )


def quantize_layer(
    layer: LayerInput, config: QuantizeConfig, mask: torch.Tensor | None
) -> QuantizationResult:
    """``run_quantizer`` with the config's settings (the kept weights only, given ``mask``)."""
    return run_quantizer(layer, config.k, config.algorithm, config.lam, config.init,
                         config.max_iter, mask=mask)


def handle_quantize(layers: list[LayerInput], config: QuantizeConfig) -> dict[str, LayerResult]:
    warn_ignored_quartic(layers, config.algorithm)
    results = {}
    for layer in layers:
        result = quantize_layer(layer, config, None)
        results[layer.name] = quantized_result(layer, result, None)
    return results


K_REQUIRED = "--clusters K or --bits B"
CLUSTERS = Flag("--clusters", "clusters", int, help="k centroids per layer", group="k",
                required=K_REQUIRED)
BITS = Flag("--bits", "bits", int, help="k = 2**bits centroids per layer", group="k",
            required=K_REQUIRED)
ALGORITHM = Flag("--algorithm", "algorithm", choices=ALGORITHMS,
                 help="quantizer: lloyd (weighted k-means, the paper's; default), quartic, "
                      "optimal (exact DP) or entropy (ECSQ)")
LAM = Flag("--lam", "lam", float, help="rate weight for --algorithm entropy (objective units "
                                       "per bit)")


def sweep_quantizer(fields: dict, objective: str) -> dict:
    """A sweep's quantizer for an objective: the quartic term of gradient+hessian needs
    Algorithm 2 (App. C.2) to be minimized, so Lloyd becomes quartic k-means there."""
    if objective == "gradient+hessian" and fields.get("algorithm", "lloyd") == "lloyd":
        return {**fields, "algorithm": "quartic"}
    return fields


register(MethodSpec(
    name="quantize", config=QuantizeConfig, handler=per_layer(handle_quantize),
    label="quantization", example={"clusters": 4}, flags=(CLUSTERS, BITS, ALGORITHM, LAM),
    sweep=SweepAxis("clusters", (2, 3, 4, 8, 16), "--clusters", int,
                    "quantization: centroids per layer"),
    sweep_defaults={"algorithm": "lloyd"}, sweep_options=(ALGORITHM,), adapt=sweep_quantizer,
    setting=lambda config: f"k={config.k}",
    style={"color": "tab:blue", "linestyle": "-"}, in_default_sweep=True,
))
