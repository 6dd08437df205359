"""Pure tensor functions: the in-memory layouts of compressed weights.

- Palette indices: ``index_layout(k)`` picks the narrowest storage for indices in ``[0, k)``:
  1, 2 or 4 bits packed into bytes (8, 4 or 2 per byte, first index in the lowest bits) for
  k ≤ 2, 4, 16; uint8 for k ≤ 256, int16 for k ≤ 2¹⁵, else int32. ``pack_indices`` /
  ``unpack_indices`` convert, exactly.
- Kept positions of a pruned tensor: a bit mask (8 positions per byte, least significant bit
  first) or the kept positions as int32, whichever is smaller (``pack_mask``).
"""

from __future__ import annotations

import torch

from rdcompress.errors import ConfigError

UINT1, UINT2, UINT4, UINT8, INT16, INT32 = "uint1", "uint2", "uint4", "uint8", "int16", "int32"
SUB_BYTE = {UINT1: 1, UINT2: 2, UINT4: 4}  # layout -> bits per index, packed into bytes
_STORAGE = {UINT8: torch.uint8, INT16: torch.int16, INT32: torch.int32}
BITS, POSITIONS = "bits", "positions"


def index_layout(k: int) -> str:
    """The narrowest index storage for a codebook of ``k`` entries."""
    if k < 1:
        raise ConfigError(f"a codebook needs k >= 1 entries, got k={k}")
    for layout, bits in SUB_BYTE.items():
        if k <= 1 << bits:
            return layout
    if k <= 256:
        return UINT8
    return INT16 if k <= 2**15 else INT32


def pack_fields(values: torch.Tensor, bits: int) -> torch.Tensor:
    """(n,) integers < 2**bits -> (ceil(n·bits/8),) uint8, 8/bits per byte, LSB first."""
    per_byte = 8 // bits
    flat = values.reshape(-1)
    padded = torch.zeros(-(-flat.numel() // per_byte) * per_byte, dtype=torch.int32)
    padded[:flat.numel()] = flat.to(torch.int32)
    shifts = torch.arange(0, 8, bits, dtype=torch.int32)  # field j sits at bit j·bits
    return (padded.reshape(-1, per_byte) << shifts).sum(dim=1, dtype=torch.int32).to(torch.uint8)


def unpack_fields(packed: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_fields`: (n,) uint8 fields."""
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8)
    fields = (packed.reshape(-1, 1) >> shifts) & ((1 << bits) - 1)  # (bytes, 8/bits)
    return fields.reshape(-1)[:n]


def pack_indices(indices: torch.Tensor, layout: str) -> torch.Tensor:
    """(n,) integer indices -> their storage (sub-byte layouts: ``pack_fields``)."""
    if layout in SUB_BYTE:
        return pack_fields(indices, SUB_BYTE[layout])
    return indices.reshape(-1).to(_STORAGE[layout])


def unpack_indices(packed: torch.Tensor, layout: str, n: int) -> torch.Tensor:
    """Storage -> (n,) int32 indices."""
    if layout in SUB_BYTE:
        return unpack_fields(packed, SUB_BYTE[layout], n).to(torch.int32)
    return packed.to(torch.int32)


_BIT_PATTERNS = {2: torch.int16, 4: torch.int32, 8: torch.int64}  # element size -> int type


def palette_of(dense: torch.Tensor, max_k: int = 256
               ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(codebook (k,), indices (numel,)) with ``codebook[indices]`` bit for bit ``dense``
    (flattened), or None if it holds more than ``max_k`` distinct values. Values are compared
    as bit patterns, so -0.0 and +0.0 stay distinct (and NaNs are kept as they are)."""
    flat = dense.reshape(-1)
    patterns = flat.view(_BIT_PATTERNS[flat.element_size()])
    unique, inverse = torch.unique(patterns, return_inverse=True)
    if unique.numel() > max_k:
        return None
    return unique.view(dense.dtype), inverse


def mask_layout(numel: int, kept: int) -> str:
    """``BITS`` (numel/8 bytes) unless the int32 positions (4 bytes per kept one) are smaller."""
    return POSITIONS if 4 * kept < (numel + 7) // 8 else BITS


def pack_mask(mask: torch.Tensor, layout: str) -> torch.Tensor:
    """(numel,) bool -> bits: (ceil(numel/8),) uint8, LSB first; positions: (kept,) int32."""
    flat = mask.reshape(-1).to(torch.bool)
    if layout == POSITIONS:
        return flat.nonzero().reshape(-1).to(torch.int32)
    return pack_fields(flat, 1)


def unpack_mask(packed: torch.Tensor, layout: str, numel: int) -> torch.Tensor:
    """Storage -> (numel,) bool mask (True = kept)."""
    if layout == POSITIONS:
        mask = torch.zeros(numel, dtype=torch.bool)
        mask[packed.to(torch.int64)] = True
        return mask
    return unpack_fields(packed, 1, numel).to(torch.bool)


def scatter_kept(values: torch.Tensor, mask: torch.Tensor, shape: tuple[int, ...]
                 ) -> torch.Tensor:
    """Dense tensor of ``shape``: ``values`` (kept,) at the True positions of ``mask`` in
    row-major order, +0.0 elsewhere (exactly what the codec decodes a pruned tensor to)."""
    dense = torch.zeros(mask.numel(), dtype=values.dtype)
    dense.masked_scatter_(mask, values)
    return dense.reshape(shape)
