"""What every method handler receives and returns, and the per-layer arithmetic they share.

A handler maps ``list[LayerInput]`` to ``{name: LayerResult}``. It never sees the model, so it
cannot modify it; it builds codec entries and the exact tensors those entries decode to.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from rdcompress.codec import PrunedTensor, QuantizedTensor, RawTensor
from rdcompress.codec.dq import DQTensor
from rdcompress.compress.compose import FLOAT_DTYPES
from rdcompress.errors import ConfigError
from rdcompress.quantize import (
    QuantizationResult,
    entropy_constrained,
    optimal_quantize,
    quartic_kmeans,
    weighted_lloyd,
)

DTYPE_NAMES = {dtype: name for name, dtype in FLOAT_DTYPES.items()}  # torch dtype -> name


@dataclass
class LayerInput:
    """One compressible parameter and its importances (H already = quartic / 4)."""

    name: str
    weight: torch.Tensor  # original values, any shape S, a floating dtype, CPU, detached
    I: torch.Tensor  # (S) float64, >= 0
    H: torch.Tensor | None  # (S) float64, >= 0, or None
    statistics: dict[str, Any] = field(default_factory=dict)  # per-layer extras given to
    #   compress(layer_statistics=...), e.g. {"input_moment": (d, d)} for whitened low rank


@dataclass
class LayerStats:
    """Per-layer figures recorded in results and in the .rdz manifest."""

    name: str
    shape: tuple[int, ...]
    numel: int
    kept: int  # weights not pruned
    clusters: int | None  # codebook size (quantized layers)
    distortion: float  # Σ I (w − ŵ)² + H (w − ŵ)⁴ of the stored ŵ
    relative_distortion: float  # distortion / Σ I w² + H w⁴ (1.0 = as bad as zeroing the layer)
    entropy_bits: float | None  # empirical entropy of the cluster indices, bits per kept weight
    rank: int | None = None  # low-rank layers: the rank r of W ≈ A·B

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.numel

    def to_dict(self) -> dict:
        out = asdict(self)
        out["shape"] = list(self.shape)
        out["kept_fraction"] = self.kept_fraction
        return out


@dataclass
class LayerResult:
    """A compressed layer: one codec ``entry``, or several ``parts`` and their ``recipe``.

    With parts (``compose.py``: low-rank factors, or a sum of disjoint pieces) ``entry`` is None,
    the parts are codec entries named ``compose.part_name(layer, suffix)`` and ``weight`` must
    equal ``compose.compose_weight(layer, recipe, decoded parts)`` bit for bit.
    """

    entry: RawTensor | QuantizedTensor | PrunedTensor | DQTensor | None
    weight: torch.Tensor  # exactly what the file decodes to: original dtype and shape
    stats: LayerStats
    parts: list[Any] | None = None  # codec entries (RawTensor | QuantizedTensor | PrunedTensor)
    recipe: dict | None = None  # compose.make_recipe(...), stored in the manifest


def fp32_bytes(state: dict[str, torch.Tensor]) -> int:
    """Original size: 4 bytes per floating element, integer buffers at their own size."""
    return sum(t.numel() * (4 if t.is_floating_point() else t.element_size())
               for t in state.values())


def layer_distortion(layer: LayerInput, w_hat: torch.Tensor) -> tuple[float, float]:
    """(Σ I (w − ŵ)² + H (w − ŵ)⁴, same for ŵ = 0), in float64."""

    def objective(diff: torch.Tensor) -> float:
        d2 = diff * diff
        value = (layer.I * d2).sum()
        if layer.H is not None:
            value = value + (layer.H * d2 * d2).sum()
        return float(value)

    w = layer.weight.to(torch.float64)
    return objective(w - w_hat.to(torch.float64)), objective(w)


def pruned_result(layer: LayerInput, mask: torch.Tensor) -> LayerResult:
    """Keep the masked weights exactly (a PrunedTensor); mask has the weight's shape."""
    flat_mask = mask.reshape(-1)
    w_hat = torch.where(mask, layer.weight, torch.zeros_like(layer.weight))
    kept_values: Any = layer.weight.reshape(-1)[flat_mask].clone()  # the codec takes torch
    entry = PrunedTensor(
        name=layer.name, shape=tuple(layer.weight.shape), dtype=DTYPE_NAMES[layer.weight.dtype],
        mask=flat_mask.numpy().copy(), values=kept_values,
    )
    return LayerResult(entry, w_hat, _stats(layer, w_hat, int(flat_mask.sum()), None, None))


def quantized_result(
    layer: LayerInput, result: QuantizationResult, mask: torch.Tensor | None
) -> LayerResult:
    """Store ``result`` (for the kept weights, row-major) as a QuantizedTensor; ŵ as decoded.

    The decoder casts the stored codebook to the layer's dtype and gathers, so ŵ is built the
    same way here: codebook -> storage precision -> dtype -> gather -> scatter into zeros.
    """
    dtype = layer.weight.dtype
    storage = np.float64 if dtype == torch.float64 else np.float32
    codebook = result.codebook.astype(storage)  # (k,)
    values = torch.from_numpy(codebook).to(dtype)[torch.from_numpy(result.assignments)]
    flat = torch.zeros(layer.weight.numel(), dtype=dtype)
    flat_mask = None if mask is None else mask.reshape(-1)
    if flat_mask is None:
        flat[:] = values
    else:
        flat[flat_mask] = values
    w_hat = flat.reshape(layer.weight.shape)
    entry = QuantizedTensor(
        name=layer.name, shape=tuple(layer.weight.shape), dtype=DTYPE_NAMES[dtype],
        codebook=codebook, indices=result.assignments,
        mask=None if flat_mask is None else flat_mask.numpy().copy(),
    )
    kept = layer.weight.numel() if flat_mask is None else int(flat_mask.sum())
    return LayerResult(entry, w_hat, _stats(layer, w_hat, kept, codebook.size, result.entropy_bits))


def run_quantizer(
    layer: LayerInput, k: int, algorithm: str, lam: float, init: str, max_iter: int,
    mask: torch.Tensor | None = None,
) -> QuantizationResult:
    """Quantize the (kept) weights of ``layer`` with ``algorithm`` ("lloyd", "quartic",
    "optimal", "entropy"). ``k`` too large for the layer becomes a ConfigError naming it."""
    w, I = layer.weight.reshape(-1), layer.I.reshape(-1)  # (n,)
    H = None if layer.H is None else layer.H.reshape(-1)
    if mask is not None:
        keep = mask.reshape(-1)
        w, I, H = w[keep], I[keep], None if H is None else H[keep]
    try:
        if algorithm == "lloyd":
            return weighted_lloyd(w, I, k, init=init, max_iter=max_iter)
        if algorithm == "quartic":
            return quartic_kmeans(w, I, H, k, init=init, max_iter=max_iter)
        if algorithm == "optimal":
            return optimal_quantize(w, I, k, H=H)
        if algorithm == "entropy":
            return entropy_constrained(w, I, k, lam, H=H, init=init, max_iter=max_iter)
    except ConfigError as error:
        raise ConfigError(f"layer {layer.name!r} ({w.numel()} weights): {error}") from None
    raise ConfigError(f"algorithm={algorithm!r} has no quantizer")  # configs validate first


def _stats(layer: LayerInput, w_hat: torch.Tensor, kept: int, clusters: int | None,
           entropy_bits: float | None) -> LayerStats:
    distortion, zero_distortion = layer_distortion(layer, w_hat)
    return LayerStats(
        name=layer.name, shape=tuple(layer.weight.shape), numel=layer.weight.numel(), kept=kept,
        clusters=clusters, distortion=distortion,
        relative_distortion=distortion / zero_distortion if zero_distortion > 0 else 0.0,
        entropy_bits=entropy_bits,
    )
