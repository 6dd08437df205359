"""Weight holders: modules that keep one parameter in its compressed form and decode it.

Calling a holder returns the dense parameter, bit for bit what ``rdcompress.compress.load``
puts in the dense model:

- ``Palette``: a codebook (k,) in the weight's dtype + packed indices (``packing``), and for a
  pruned+quantized tensor the kept positions; decodes ``codebook[indices]``.
- ``SparseValues``: a pruned tensor's kept values (kept,) + kept positions.
- ``Dense``: a tensor stored as is (raw entries, and low-rank factors kept in float).
- ``Composed``: a composite parameter (``compress.compose``): the parts' sum or the product
  A·B in float64, rounded once to the parameter's dtype, exactly as ``compose_weight``.

Decoding happens on every call unless ``cache=True``, which keeps the decoded tensor after the
first call (a non-persistent buffer ``cached``: counted by ``deploy.memory``).
"""

from __future__ import annotations

import torch
from torch import nn

from rdcompress.codec import PrunedTensor, QuantizedTensor, RawTensor
from rdcompress.codec.tensors import Tensor as CodecEntry
from rdcompress.codec.tensors import cast_codebook, decode_tensor, to_torch
from rdcompress.compress.compose import FLOAT_DTYPES, LOWRANK
from rdcompress.deploy.packing import (
    SUB_BYTE,
    index_layout,
    mask_layout,
    pack_indices,
    pack_mask,
    palette_of,
    scatter_kept,
    unpack_fields,
    unpack_indices,
    unpack_mask,
)

# element size of a codebook value -> the integer type holding two of them
_PAIR_DTYPES = {2: torch.int32, 4: torch.int64}


class WeightSource(nn.Module):
    """A parameter held in some form; ``forward()`` returns it dense, shaped ``self.shape``."""

    cached: torch.Tensor | None

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, cache: bool) -> None:
        super().__init__()
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype
        self.cache = cache
        self.register_buffer("cached", None, persistent=False)

    def decode(self) -> torch.Tensor:
        raise NotImplementedError

    def forward(self) -> torch.Tensor:
        if self.cached is not None:
            return self.cached
        weight = self.decode()
        if self.cache:
            self.cached = weight
        return weight


class Palette(WeightSource):
    """Codebook + indices. Buffers: ``codebook`` (k,) weight dtype; ``indices`` (packed, see
    ``packing.index_layout``); ``kept`` (pruned+quantized only: mask bits or positions)."""

    codebook: torch.Tensor
    indices: torch.Tensor
    kept: torch.Tensor | None

    def __init__(self, codebook: torch.Tensor, indices: torch.Tensor, shape: tuple[int, ...],
                 mask: torch.Tensor | None = None, cache: bool = False) -> None:
        super().__init__(shape, codebook.dtype, cache)
        self.layout = index_layout(codebook.numel())
        self.n_indices = int(indices.numel())
        self.register_buffer("codebook", codebook.clone())
        self.register_buffer("indices", pack_indices(indices, self.layout))
        numel = int(torch.Size(self.shape).numel())
        self.mask_layout = None if mask is None else mask_layout(numel, self.n_indices)
        self.register_buffer("kept", None if mask is None or self.mask_layout is None
                             else pack_mask(mask, self.mask_layout))

    @property
    def k(self) -> int:
        return int(self.codebook.numel())

    def decode(self) -> torch.Tensor:
        if self.layout in SUB_BYTE:
            values = self._decode_packed()
        else:
            symbols = unpack_indices(self.indices, self.layout, self.n_indices)  # (n,)
            values = self.codebook.index_select(0, symbols.long())
        if self.kept is None:
            return values.reshape(self.shape)
        assert self.mask_layout is not None
        mask = unpack_mask(self.kept, self.mask_layout, int(torch.Size(self.shape).numel()))
        return scatter_kept(values, mask, self.shape)

    def _decode_packed(self) -> torch.Tensor:
        """(n,) values of 1/2/4-bit indices with one gather per byte: a (256, 8/bits) table
        of the codebook values of every byte's fields (built per call; at most 2,048 values)
        indexed by the packed bytes. Two 16/32-bit values (4-bit indices) are gathered as one
        32/64-bit integer: a 1-D gather, about 3x faster than gathering rows. Same values as
        ``codebook[unpack_indices(...)]`` (checked by tests)."""
        bits = SUB_BYTE[self.layout]
        padded = torch.zeros(1 << bits, dtype=self.codebook.dtype)
        padded[:self.k] = self.codebook
        fields = unpack_fields(torch.arange(256, dtype=torch.uint8), bits, 256 * 8 // bits)
        table = padded[fields.long()].reshape(256, 8 // bits)  # (256, fields per byte)
        index = self.indices.long()  # (bytes,): int64 is index_select's fast path
        pair = _PAIR_DTYPES.get(table.element_size()) if bits == 4 else None
        if pair is None:
            rows = table.index_select(0, index)
        else:
            rows = table.view(pair).reshape(-1).index_select(0, index).view(table.dtype)
        return rows.reshape(-1)[:self.n_indices]

    def extra_repr(self) -> str:
        pruned = "" if self.kept is None else f", pruned ({self.mask_layout})"
        return f"shape={self.shape}, k={self.k}, indices={self.layout}{pruned}"


class SparseValues(WeightSource):
    """Kept values (kept,) in the weight's dtype + the kept positions (bits or int32)."""

    values: torch.Tensor
    kept: torch.Tensor

    def __init__(self, values: torch.Tensor, mask: torch.Tensor, shape: tuple[int, ...],
                 cache: bool = False) -> None:
        super().__init__(shape, values.dtype, cache)
        self.mask_layout = mask_layout(mask.numel(), int(values.numel()))
        self.register_buffer("values", values.clone().reshape(-1))
        self.register_buffer("kept", pack_mask(mask, self.mask_layout))

    def decode(self) -> torch.Tensor:
        mask = unpack_mask(self.kept, self.mask_layout, int(torch.Size(self.shape).numel()))
        return scatter_kept(self.values, mask, self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, kept={self.values.numel()}, positions={self.mask_layout}"


class Dense(WeightSource):
    """A tensor held as is (buffer ``value``); never cached (it is its own decoded form)."""

    value: torch.Tensor

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__(tuple(value.shape), value.dtype, cache=False)
        self.register_buffer("value", value)

    def decode(self) -> torch.Tensor:
        return self.value

    def extra_repr(self) -> str:
        return f"shape={self.shape}, dtype={self.dtype}"


class Composed(WeightSource):
    """``op`` "sum" (Σ parts) or "lowrank" (A·B reshaped), in float64, rounded once."""

    def __init__(self, op: str, parts: list[WeightSource], shape: tuple[int, ...],
                 dtype: torch.dtype, cache: bool = False) -> None:
        super().__init__(shape, dtype, cache)
        self.op = op
        self.parts = nn.ModuleList(parts)

    def decode(self) -> torch.Tensor:
        parts = [part().to(torch.float64) for part in self.parts]
        if self.op == LOWRANK:
            dense = parts[0] @ parts[1]
        else:
            dense = torch.zeros(self.shape, dtype=torch.float64)
            for part in parts:
                dense += part
        return dense.reshape(self.shape).to(self.dtype)

    def extra_repr(self) -> str:
        return f"op={self.op}, shape={self.shape}, dtype={self.dtype}"


def source_from_entry(entry: CodecEntry, cache: bool = False) -> WeightSource:
    """The holder of one codec entry (``rdcompress.codec.read_rdz_tensors``). A pruned tensor
    whose values + positions would not be smaller than the dense tensor is held dense, and so
    is an entry of a kind without a holder of its own here (e.g. dependent quantization's
    levels): decoded by the codec, then held as a palette of its distinct values (bit
    patterns) when it has at most 256, else dense."""
    if isinstance(entry, RawTensor):
        return Dense(to_torch(entry.array, entry.dtype or entry.array.dtype.name))
    if not isinstance(entry, (QuantizedTensor, PrunedTensor)):  # e.g. dependent quantization
        dense = to_torch(decode_tensor(entry), entry.dtype)
        palette = palette_of(dense) if dense.is_floating_point() and dense.numel() else None
        if palette is None:
            return Dense(dense)
        return Palette(palette[0], palette[1], tuple(dense.shape), cache=cache)
    shape = tuple(entry.shape)
    mask = None if entry.mask is None else torch.from_numpy(entry.mask.copy())
    if isinstance(entry, QuantizedTensor):
        codebook = to_torch(cast_codebook(entry.codebook, entry.dtype), entry.dtype)
        return Palette(codebook, torch.from_numpy(entry.indices), shape, mask, cache)
    values = to_torch(entry.values, entry.dtype)
    assert mask is not None
    sparse = SparseValues(values, mask, shape, cache)
    dense_bytes = entry.numel * values.element_size()
    if sparse.values.nbytes + sparse.kept.nbytes >= dense_bytes:
        return Dense(scatter_kept(values, mask, shape))
    return sparse


def composed_source(recipe: dict, parts: list[WeightSource], cache: bool = False) -> Composed:
    """The holder of a composite parameter from its recipe (checked by ``check_composites``)."""
    return Composed(recipe["op"], parts, tuple(recipe["shape"]),
                    FLOAT_DTYPES[recipe["dtype"]], cache)
