"""Trainable leaves that keep a compressed model inside its ``.rdz`` structure.

Every parameter of the model is a function of a few trainable leaves, chosen by how the file
stores it (an explicit table, per codec entry type):

| entry            | leaf                       | weight                                        |
|------------------|----------------------------|-----------------------------------------------|
| QuantizedTensor  | codebook c (k,) float32    | scatter(mask, c[indices]) — indices fixed     |
| PrunedTensor     | kept values v (n_kept,)    | scatter(mask, v) — pruned positions stay 0    |
| RawTensor        | the parameter itself       | itself (stored raw, so any value is honest)   |
| composite parts  | none (frozen, reported)    | the composed weight of the file               |
| other (DQTensor) | none (frozen, reported)    | the decoded weight of the file                |

A quantized weight keeps each position's cluster index; the gradient of centroid j is the sum
of its members' gradients (∂L/∂c_j = Σ_{i: idx_i = j} ∂L/∂w_i, Deep Compression §3.3), which
autograd's gather backward (a scatter-add) computes. Masks come from the file and are never
re-coded. Low-rank composites are frozen for now (their factors could train the same way).

``entries()`` turns the leaves back into codec entries (same indices and masks, trained
codebooks and values, raw tensors from the model), and ``decoded_state()`` is exactly what a
reader decodes from them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rdcompress.codec.tensors import (
    PrunedTensor,
    QuantizedTensor,
    RawTensor,
    decode_tensor,
    to_torch,
)
from rdcompress.compress.compose import compose_state
from rdcompress.errors import ModelError

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16,
                 "bfloat16": torch.bfloat16, "float64": torch.float64}


def scatter_kept(values: torch.Tensor, positions: torch.Tensor | None, numel: int,
                 shape: tuple[int, ...]) -> torch.Tensor:
    """(n_kept,) values at ``positions`` (row-major flat indices) of a zero (numel,) tensor,
    reshaped to ``shape``; ``positions=None`` means dense. Differentiable in ``values``."""
    if positions is None:
        return values.reshape(shape)
    dense = torch.zeros(numel, dtype=values.dtype, device=values.device)
    return dense.index_copy(0, positions, values).reshape(shape)


def quantized_weight(codebook: torch.Tensor, indices: torch.Tensor,
                     positions: torch.Tensor | None, numel: int, shape: tuple[int, ...],
                     dtype: torch.dtype) -> torch.Tensor:
    """The dense weight of a codebook (k,), indices (n_kept,) and kept positions: codebook cast
    to ``dtype`` (as the decoder casts it), gathered, scattered. Gradient to the codebook."""
    return scatter_kept(codebook.to(dtype)[indices], positions, numel, shape)


class TiedWeights(nn.Module):
    """The trainable leaves of a compressed model and the weights they define.

    Args:
        model: the architecture holding the decoded weights (raw parameters are read from it,
            so level-0 changes to biases are kept).
        tensors: the file's codec entries (``read_rdz_tensors`` or ``CompressedModel.tensors``).
        manifest: the file's manifest (its ``composites``).
    """

    def __init__(self, model: nn.Module, tensors: Sequence[Any], manifest: dict) -> None:
        super().__init__()
        self.entries_in = {t.name: t for t in tensors}
        self.order = [t.name for t in tensors]
        self.composites = dict(manifest.get("composites") or {})
        params = dict(model.named_parameters())
        self.codebooks = nn.ParameterDict()
        self.values = nn.ParameterDict()
        self.raw = nn.ParameterDict()
        self.frozen: list[str] = []  # parameters left as the file has them (composites)
        self._fixed: dict[str, tuple] = {}  # name -> (indices, positions, numel, shape, dtype)
        for name, param in params.items():
            key = _key(name)
            if name in self.composites:
                self.frozen.append(name)
                continue
            entry = self.entries_in.get(name)
            if entry is None:
                raise ModelError(f"parameter {name!r} has no entry in the file; recover a file "
                                 "with the model it was compressed from")
            if isinstance(entry, QuantizedTensor):
                self.codebooks[key] = nn.Parameter(torch.from_numpy(
                    np.array(entry.codebook, dtype=np.float64 if entry.dtype == "float64"
                             else np.float32)))
                self._fixed[name] = self._layout(entry, param)
            elif isinstance(entry, PrunedTensor):
                self.values[key] = nn.Parameter(to_torch(entry.values, entry.dtype))
                self._fixed[name] = self._layout(entry, param)
            elif isinstance(entry, RawTensor):
                self.raw[key] = nn.Parameter(param.detach().clone())
            else:  # e.g. DQTensor (trellis-coded): no tied form yet, kept as the file has it
                self.frozen.append(name)
        self.names = [n for n in params if n not in self.frozen]
        if self.frozen:
            warnings.warn(
                f"{len(self.frozen)} parameters stay as the file stores them during fine-tuning "
                f"(low-rank composites or entry kinds without a tied form), e.g. "
                f"{self.frozen[0]!r}; the rest of the model trains.", stacklevel=3)

    def _layout(self, entry: QuantizedTensor | PrunedTensor, param: torch.Tensor) -> tuple:
        if tuple(entry.shape) != tuple(param.shape):
            raise ModelError(f"{entry.name!r} is {tuple(entry.shape)} in the file but "
                             f"{tuple(param.shape)} in the model; use the model it was "
                             "compressed from")
        positions = None if entry.mask is None else \
            torch.from_numpy(np.flatnonzero(entry.mask).astype(np.int64))
        indices = torch.from_numpy(entry.indices) if isinstance(entry, QuantizedTensor) \
            else None
        self.register_buffer(f"_pos_{_key(entry.name)}", positions, persistent=False)
        self.register_buffer(f"_idx_{_key(entry.name)}", indices, persistent=False)
        return entry.numel, tuple(entry.shape), _TORCH_DTYPES[entry.dtype]

    def weight(self, name: str) -> torch.Tensor:
        """The dense parameter ``name`` as the leaves define it (differentiable)."""
        key = _key(name)
        if key in self.raw:
            return self.raw[key]
        numel, shape, dtype = self._fixed[name]
        positions = getattr(self, f"_pos_{key}")
        if key in self.codebooks:
            return quantized_weight(self.codebooks[key], getattr(self, f"_idx_{key}"),
                                    positions, numel, shape, dtype)
        return scatter_kept(self.values[key], positions, numel, shape)

    def weights(self) -> dict[str, torch.Tensor]:
        """{parameter name: tensor} of every trainable parameter (for ``functional_call``)."""
        return {name: self.weight(name) for name in self.names}

    @torch.no_grad()
    def entries(self, model: nn.Module) -> list[Any]:
        """The codec entries of the current leaves, in the file's order: quantized entries keep
        their indices and masks with the trained codebook (float32; float64 for float64
        weights), pruned entries their masks with the trained values, raw entries the leaf or
        the model's buffer (BatchNorm statistics), composite parts unchanged."""
        state = model.state_dict()
        out: list[Any] = []
        for name in self.order:
            entry = self.entries_in[name]
            key = _key(name)
            if key in self.codebooks:
                out.append(QuantizedTensor(name, entry.shape, entry.dtype,
                                           self.codebooks[key].detach().cpu().numpy(),
                                           entry.indices, entry.mask))
            elif key in self.values:
                out.append(PrunedTensor(name, entry.shape, entry.dtype, entry.mask,
                                        self.values[key].detach().cpu()))
            elif key in self.raw:
                out.append(RawTensor(name, self.raw[key].detach().cpu().clone()))
            elif isinstance(entry, RawTensor) and name in state:  # buffers
                out.append(RawTensor(name, state[name].detach().cpu().clone()))
            else:  # composite parts, and anything frozen
                out.append(entry)
        return out

    def check_finite(self) -> list[str]:
        """Names of leaves holding NaN/inf."""
        return [name for name, p in self.named_parameters() if not torch.isfinite(p).all()]


def decoded_state(tensors: Sequence[Any], manifest: dict) -> dict[str, torch.Tensor]:
    """{state_dict name: tensor}: exactly what a reader decodes from ``tensors`` (composites
    composed), via the codec's own ``decode_tensor``."""
    decoded = {t.name: to_torch(decode_tensor(t), str(t.dtype)) for t in tensors}
    return compose_state(manifest, decoded)


def _key(name: str) -> str:
    """A ParameterDict key for a dotted parameter name (dots are not allowed there)."""
    return name.replace(".", "/")
