"""Pure tensor functions: the in-memory layouts of compressed weights.

- Palette indices: ``index_layout(k)`` picks the narrowest storage for indices in ``[0, k)``:
  packed 4-bit (two per byte, low nibble first) for k ≤ 16, uint8 for k ≤ 256, int16 for
  k ≤ 2¹⁵, else int32. ``pack_indices`` / ``unpack_indices`` convert, exactly.
- Kept positions of a pruned tensor: a bit mask (8 positions per byte, least significant bit
  first) or the kept positions as int32, whichever is smaller (``pack_mask``).
"""

from __future__ import annotations

import torch

from rdcompress.errors import ConfigError

UINT4, UINT8, INT16, INT32 = "uint4", "uint8", "int16", "int32"
_STORAGE = {UINT8: torch.uint8, INT16: torch.int16, INT32: torch.int32}
BITS, POSITIONS = "bits", "positions"


def index_layout(k: int) -> str:
    """The narrowest index storage for a codebook of ``k`` entries."""
    if k < 1:
        raise ConfigError(f"a codebook needs k >= 1 entries, got k={k}")
    if k <= 16:
        return UINT4
    if k <= 256:
        return UINT8
    return INT16 if k <= 2**15 else INT32


def pack_indices(indices: torch.Tensor, layout: str) -> torch.Tensor:
    """(n,) integer indices -> their storage: uint4 = (ceil(n/2),) uint8, low nibble first."""
    flat = indices.reshape(-1)
    if layout != UINT4:
        return flat.to(_STORAGE[layout])
    padded = torch.zeros(flat.numel() + flat.numel() % 2, dtype=torch.uint8)
    padded[:flat.numel()] = flat.to(torch.uint8)
    pairs = padded.reshape(-1, 2)  # (ceil(n/2), 2): (low, high) nibbles
    return pairs[:, 0] | (pairs[:, 1] << 4)


def unpack_indices(packed: torch.Tensor, layout: str, n: int) -> torch.Tensor:
    """Storage -> (n,) int32 indices (int32 is what index_select takes without widening)."""
    if layout != UINT4:
        return packed.to(torch.int32)
    pairs = torch.stack((packed & 15, packed >> 4), dim=1)  # (ceil(n/2), 2)
    return pairs.reshape(-1)[:n].to(torch.int32)


def mask_layout(numel: int, kept: int) -> str:
    """``BITS`` (numel/8 bytes) unless the int32 positions (4 bytes per kept one) are smaller."""
    return POSITIONS if 4 * kept < (numel + 7) // 8 else BITS


def pack_mask(mask: torch.Tensor, layout: str) -> torch.Tensor:
    """(numel,) bool -> bits: (ceil(numel/8),) uint8, LSB first; positions: (kept,) int32."""
    flat = mask.reshape(-1).to(torch.bool)
    if layout == POSITIONS:
        return flat.nonzero().reshape(-1).to(torch.int32)
    padded = torch.zeros(-(-flat.numel() // 8) * 8, dtype=torch.uint8)
    padded[:flat.numel()] = flat.to(torch.uint8)
    weights = (1 << torch.arange(8, dtype=torch.int32)).to(torch.uint8)  # bit j = 2**j
    return (padded.reshape(-1, 8) * weights).sum(dim=1, dtype=torch.int32).to(torch.uint8)


def unpack_mask(packed: torch.Tensor, layout: str, numel: int) -> torch.Tensor:
    """Storage -> (numel,) bool mask (True = kept)."""
    if layout == POSITIONS:
        mask = torch.zeros(numel, dtype=torch.bool)
        mask[packed.to(torch.int64)] = True
        return mask
    shifts = torch.arange(8, dtype=torch.uint8)
    bits = (packed.reshape(-1, 1) >> shifts) & 1  # (ceil(numel/8), 8)
    return bits.reshape(-1)[:numel].to(torch.bool)


def scatter_kept(values: torch.Tensor, mask: torch.Tensor, shape: tuple[int, ...]
                 ) -> torch.Tensor:
    """Dense tensor of ``shape``: ``values`` (kept,) at the True positions of ``mask`` in
    row-major order, +0.0 elsewhere (exactly what the codec decodes a pruned tensor to)."""
    dense = torch.zeros(mask.numel(), dtype=values.dtype)
    dense.masked_scatter_(mask, values)
    return dense.reshape(shape)
