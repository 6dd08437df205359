"""The in-memory layouts: packed indices and kept positions, against plain references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdcompress.deploy.packing import (
    BITS,
    POSITIONS,
    index_layout,
    mask_layout,
    pack_indices,
    pack_mask,
    scatter_kept,
    unpack_indices,
    unpack_mask,
)
from rdcompress.errors import ConfigError


@pytest.mark.parametrize(("k", "layout", "bytes_per_index"),
                         [(1, "uint1", 0.125), (2, "uint1", 0.125), (3, "uint2", 0.25),
                          (4, "uint2", 0.25), (5, "uint4", 0.5), (16, "uint4", 0.5),
                          (17, "uint8", 1),
                          (256, "uint8", 1), (257, "int16", 2), (2**15, "int16", 2),
                          (2**15 + 1, "int32", 4)])
@pytest.mark.parametrize("n", [0, 1, 7, 64])
def test_indices_round_trip(k, layout, bytes_per_index, n):
    assert index_layout(k) == layout
    indices = torch.randint(0, k, (n,), generator=torch.Generator().manual_seed(n))
    packed = pack_indices(indices, layout)
    assert packed.nbytes == int(np.ceil(n * bytes_per_index))
    assert torch.equal(unpack_indices(packed, layout, n), indices.to(torch.int32))


def test_sub_byte_field_order():
    """First index in the lowest bits (hand-computed bytes)."""
    assert pack_indices(torch.tensor([1, 2, 3]), "uint4").tolist() == [0x21, 0x03]
    assert pack_indices(torch.tensor([1, 2, 3, 0, 3]), "uint2").tolist() == [0b00111001, 3]
    assert pack_indices(torch.tensor([1, 0, 0, 1, 1, 0, 0, 0, 1]), "uint1").tolist() == [
        0b00011001, 1]


def test_index_layout_rejects_empty_codebook():
    with pytest.raises(ConfigError, match="k >= 1"):
        index_layout(0)


@pytest.mark.parametrize("numel", [1, 8, 13, 200])
@pytest.mark.parametrize("kept_fraction", [0.0, 0.01, 0.5, 1.0])
def test_masks_round_trip_in_both_layouts(numel, kept_fraction):
    gen = torch.Generator().manual_seed(numel)
    mask = torch.rand(numel, generator=gen) < kept_fraction
    for layout in (BITS, POSITIONS):
        assert torch.equal(unpack_mask(pack_mask(mask, layout), layout, numel), mask)
    assert pack_mask(mask, BITS).nbytes == -(-numel // 8)
    # bits LSB first: position 0 is bit 0 of byte 0
    assert pack_mask(torch.tensor([True] + [False] * 8), BITS).tolist() == [1, 0]


def test_mask_layout_picks_the_smaller():
    # 10,000 positions: 1,250 bytes of bits, or 4 bytes per kept position
    assert mask_layout(10_000, 312) == POSITIONS  # 1,248 bytes
    assert mask_layout(10_000, 313) == BITS  # 1,252 bytes
    assert mask_layout(10_000, 9_000) == BITS


def test_scatter_kept_matches_indexing():
    mask = torch.tensor([True, False, True, True, False, False])
    values = torch.tensor([1.5, -2.0, 3.0])
    dense = torch.zeros(6)
    dense[mask] = values
    assert torch.equal(scatter_kept(values, mask, (2, 3)), dense.reshape(2, 3))


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 16, 17, 300])
@pytest.mark.parametrize("n", [1, 9, 64])
def test_palette_decodes_as_plain_indexing(k, n):
    """Palette's fast paths (byte-pair table for 4 bits) against codebook[indices]."""
    from rdcompress.deploy import Palette

    gen = torch.Generator().manual_seed(k * n)
    codebook = torch.randn(k, generator=gen)
    indices = torch.randint(0, k, (n,), generator=gen)
    palette = Palette(codebook, indices, (n,))
    assert torch.equal(palette(), codebook[indices])
    mask = torch.rand(2 * n, generator=gen) < 0.5
    kept = int(mask.sum())
    if kept:
        masked = Palette(codebook, indices[:kept] if kept <= n else
                         torch.randint(0, k, (kept,), generator=gen), (2, n), mask)
        dense = torch.zeros(2 * n)
        dense[mask] = codebook[masked_indices(masked, kept)]
        assert torch.equal(masked(), dense.reshape(2, n))


def masked_indices(palette, kept: int) -> torch.Tensor:
    return unpack_indices(palette.indices, palette.layout, kept).long()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_palette_nibble_table_every_dtype(dtype):
    """The 4-bit path gathers value pairs as one integer, the 1/2-bit paths rows: exact for
    every float width."""
    from rdcompress.deploy import Palette

    gen = torch.Generator().manual_seed(3)
    for k in (2, 4, 11):
        codebook = torch.randn(k, generator=gen).to(dtype)
        indices = torch.randint(0, k, (77,), generator=gen)
        decoded = Palette(codebook, indices, (7, 11))()
        assert decoded.dtype == dtype
        assert torch.equal(decoded, codebook[indices].reshape(7, 11))


def test_palette_of_keeps_bit_patterns():
    """-0.0 and +0.0 are distinct codebook entries; too many distinct values -> None."""
    from rdcompress.deploy.packing import palette_of

    dense = torch.tensor([[0.0, -0.0, 1.5], [1.5, 0.0, -2.0]])
    codebook, indices = palette_of(dense)
    rebuilt = codebook[indices].reshape(dense.shape)
    assert codebook.numel() == 4
    assert torch.equal(rebuilt.view(torch.int32), dense.view(torch.int32))
    assert palette_of(torch.arange(300, dtype=torch.float32)) is None
    assert palette_of(torch.arange(300, dtype=torch.float64), max_k=300) is not None
