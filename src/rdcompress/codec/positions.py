"""Coding the positions of pruned weights: the cheapest of three methods, chosen per tensor.

A mask is (numel,) bool in row-major order, True = kept. Section layout: u8 method, then

    0 bitmap   ceil(numel / 8) bytes, ``np.packbits`` order (first position = MSB of byte 0)
    1 bits     the mask as a stream of 0/1 symbols (streams.py), i.e. entropy-coded bits
    2 gaps     gaps between *kept* positions, see below
    3 gaps     gaps between *pruned* positions, see below

Gap coding (Elias-gamma-like, entropy-coded buckets): for the positions p_0 < p_1 < ... of the
chosen value, g_i = p_i - p_{i-1} - 1 with p_{-1} = -1. Each g is split into a bucket
b = floor(log2(g + 1)) and b offset bits g + 1 - 2**b. Bytes: varint length of the bucket
stream, the bucket stream (streams.py), then all offset bits packed (MSB first, gap order).
Gap coding wins on structured masks (whole rows or channels pruned); coded bits win on
scattered ones; the bitmap wins only on tiny tensors. The writer encodes all and keeps the
smallest; the coder "huffman" cannot code binary symbols below 1 bit, so it skips method 1.
"""

from __future__ import annotations

import numpy as np

from rdcompress.codec._bytes import ByteReader, encode_varint, pack_bits, unpack_bits
from rdcompress.codec.streams import decode_stream, encode_stream
from rdcompress.errors import FormatError

POSITION_METHODS = {0: "bitmap", 1: "bits", 2: "gaps-kept", 3: "gaps-pruned"}


def encode_positions(mask: np.ndarray, coder: str) -> bytes:
    """(numel,) bool mask -> the smallest position section (method byte first)."""
    mask = np.asarray(mask, dtype=bool).reshape(-1)
    candidates = [bytes([0]) + pack_bits(mask)]
    if coder == "ans":
        candidates.append(bytes([1]) + encode_stream(mask.astype(np.int64), 2, coder))
    candidates.append(bytes([2]) + _encode_gaps(np.flatnonzero(mask), coder))
    candidates.append(bytes([3]) + _encode_gaps(np.flatnonzero(~mask), coder))
    return min(candidates, key=len)  # first (simplest) method wins ties


def decode_positions(reader: ByteReader, numel: int, version: int = 2) -> tuple[np.ndarray, str]:
    """Read a position section (to its end). Returns ((numel,) bool mask, method name).

    ``numel`` must already be bounded by the caller; every count read here is checked
    against it before use.
    """
    method = reader.read_u8()
    if method not in POSITION_METHODS:
        raise FormatError(f"{reader.where}: unknown position method {method}")
    if method == 0:
        mask = unpack_bits(reader.rest(), numel, reader.where).astype(bool)
    elif method == 1:
        symbols, alphabet_size, _ = decode_stream(reader, numel, 2, version)
        if alphabet_size != 2 or len(symbols) != numel:
            raise FormatError(
                f"{reader.where}: mask stream has {len(symbols)} symbols over alphabet "
                f"{alphabet_size}, expected {numel} over 2"
            )
        mask = symbols.astype(bool)
    else:
        positions = _decode_gaps(reader, numel, version)
        mask = np.zeros(numel, dtype=bool)
        mask[positions] = True
        if method == 3:
            mask = ~mask
    return mask, POSITION_METHODS[method]


def _encode_gaps(positions: np.ndarray, coder: str) -> bytes:
    positions = np.asarray(positions, dtype=np.int64)  # (m,) strictly increasing
    gaps = np.diff(positions, prepend=-1) - 1  # (m,) >= 0
    buckets = np.floor(np.log2(gaps + 1.0)).astype(np.int64)  # (m,)
    # Guard float rounding near powers of two: enforce 2**b <= g + 1 < 2**(b+1).
    buckets -= (np.left_shift(1, buckets) > gaps + 1).astype(np.int64)
    buckets += (np.left_shift(1, buckets + 1) <= gaps + 1).astype(np.int64)
    offsets = gaps + 1 - np.left_shift(1, buckets)  # (m,) in [0, 2**b)
    alphabet_size = int(buckets.max(initial=0)) + 1
    bucket_stream = encode_stream(buckets, alphabet_size, coder)
    return encode_varint(len(bucket_stream)) + bucket_stream + pack_bits(
        _offset_bits(offsets, buckets)
    )


def _offset_bits(offsets: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Concatenate each offset's ``width`` low bits, MSB first: (sum widths,) uint8."""
    total = int(widths.sum())
    owner = np.repeat(np.arange(len(widths)), widths)  # (total,)
    bit_in_value = np.arange(total) - (np.cumsum(widths) - widths)[owner]
    shift = widths[owner] - 1 - bit_in_value
    return ((offsets[owner] >> shift) & 1).astype(np.uint8)


def _decode_gaps(reader: ByteReader, numel: int, version: int) -> np.ndarray:
    """(m,) strictly increasing positions in [0, numel)."""
    stream_length = reader.read_varint()
    stream_reader = ByteReader(reader.read(stream_length), reader.where + " (gap buckets)")
    # A gap is < numel, so its bucket is < numel.bit_length(): the alphabet is bounded too.
    buckets, _, _ = decode_stream(stream_reader, numel, max(1, numel.bit_length()), version)
    total_bits = int(buckets.sum())
    if total_bits > 8 * reader.remaining:
        raise FormatError(f"{reader.where}: gap offsets need {total_bits} bits, only "
                          f"{8 * reader.remaining} remain")
    bits = unpack_bits(reader.rest(), total_bits, reader.where).astype(np.int64)
    owner = np.repeat(np.arange(len(buckets)), buckets)
    weights = np.left_shift(1, buckets[owner] - 1 - (np.arange(total_bits) - (
        np.cumsum(buckets) - buckets)[owner]))
    offsets = np.bincount(owner, weights=bits * weights, minlength=len(buckets)).astype(np.int64)
    gaps = np.left_shift(1, buckets) + offsets - 1  # each < 2 * numel: no overflow below
    # Positions are p_i = sum_{j<=i} (g_j + 1) - 1: the last one must be < numel.
    # (The float64 sum first: an int64 sum of hostile gaps could wrap around.)
    end = float(np.sum(gaps, dtype=np.float64)) + len(gaps)
    if end <= numel + 1:
        end = int(np.sum(gaps + 1, dtype=np.int64))
    if end > numel:
        raise FormatError(
            f"{reader.where}: gap-coded position {int(end) - 1} is outside a tensor of {numel}"
        )
    return np.cumsum(gaps + 1) - 1
