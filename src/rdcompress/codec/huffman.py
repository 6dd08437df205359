"""Canonical Huffman coding of one symbol stream (the paper's coder), numpy-vectorized.

Only code lengths are stored (a Rice-coded table, one entry per symbol, 0 = absent); codes are
canonical: sorted by (length, symbol), each code = previous + 1, shifted left when the length
grows. Lengths are capped at ``MAX_CODE_LENGTH`` by halving the counts and rebuilding (only
pathological, Fibonacci-like histograms with millions of symbols ever need it).

Bits are packed most-significant first. The decoder is table-driven: a window of
``max_length`` bits is read at *every* bit position at once, its code length found by a
``searchsorted`` over the per-length limits of the canonical code, and the symbol read off the
per-length offset table; the chain of actual code starts (0, len0, len0+len1, ...) is then
followed, which is the only sequential step.
"""

from __future__ import annotations

import heapq

import numpy as np

from rdcompress.codec._bytes import ByteReader, decode_uint_table, encode_uint_table, pack_bits
from rdcompress.errors import FormatError

MAX_CODE_LENGTH = 32


def huffman_code_lengths(counts: np.ndarray) -> np.ndarray:
    """(k,) code lengths of an optimal prefix code for ``counts`` (0 for absent symbols).

    A single present symbol gets length 1 in the table; streams with one distinct symbol are
    special-cased by the stream layer (no payload bits at all).
    """
    counts = np.asarray(counts, dtype=np.int64)
    while True:
        lengths = _unlimited_lengths(counts)
        if lengths.max(initial=0) <= MAX_CODE_LENGTH:
            return lengths
        counts = np.where(counts > 0, np.maximum(counts >> 1, 1), 0)


def _unlimited_lengths(counts: np.ndarray) -> np.ndarray:
    lengths = np.zeros(len(counts), dtype=np.int64)
    present = np.flatnonzero(counts > 0)
    if len(present) == 1:
        lengths[present[0]] = 1
        return lengths
    # Heap of (weight, tie-break, member symbols); merging adds 1 to every member's length.
    heap = [(int(counts[s]), int(s), [int(s)]) for s in present]
    heapq.heapify(heap)
    while len(heap) > 1:
        weight_a, tie_a, members_a = heapq.heappop(heap)
        weight_b, tie_b, members_b = heapq.heappop(heap)
        merged = members_a + members_b
        lengths[merged] += 1
        heapq.heappush(heap, (weight_a + weight_b, min(tie_a, tie_b), merged))
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """(k,) uint64 canonical code values for the given lengths (0 where length is 0)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.uint64)
    order = np.lexsort((np.arange(len(lengths)), lengths))
    order = order[lengths[order] > 0]
    code, previous_length = 0, 0
    for position, symbol in enumerate(order):
        length = int(lengths[symbol])
        if position:
            code = (code + 1) << (length - previous_length)
        codes[symbol] = code
        previous_length = length
    return codes


def encode_huffman(symbols: np.ndarray, alphabet_size: int) -> bytes:
    """Code-length table (``encode_uint_table``) + packed payload bits."""
    symbols = np.asarray(symbols, dtype=np.int64)  # (n,)
    counts = np.bincount(symbols, minlength=alphabet_size)
    lengths = huffman_code_lengths(counts)
    codes = canonical_codes(lengths)
    symbol_lengths = lengths[symbols]  # (n,)
    total_bits = int(symbol_lengths.sum())
    starts = np.cumsum(symbol_lengths) - symbol_lengths  # (n,) first bit of each code
    owner = np.repeat(np.arange(len(symbols)), symbol_lengths)  # (total_bits,)
    bit_in_code = np.arange(total_bits) - starts[owner]
    shift = (symbol_lengths[owner] - 1 - bit_in_code).astype(np.uint64)
    bits = (codes[symbols[owner]] >> shift) & np.uint64(1)
    return encode_uint_table(lengths) + pack_bits(bits)


# Bits decoded per block: bounds the decoder's temporary arrays (~40 bytes per bit) whatever
# the payload size.
_BLOCK_BITS = 1 << 16


def decode_huffman(reader: ByteReader, count: int, alphabet_size: int) -> np.ndarray:
    """Inverse of :func:`encode_huffman`; consumes the rest of ``reader``. Returns (count,)."""
    where = reader.where
    lengths = decode_uint_table(reader, alphabet_size, max_value=MAX_CODE_LENGTH)
    payload = np.frombuffer(reader.rest(), dtype=np.uint8)
    if not lengths.any():
        raise FormatError(f"{where}: invalid Huffman code lengths (all zero)")
    kraft = float(np.sum(np.ldexp(1.0, -lengths[lengths > 0])))
    if kraft > 1.0 + 1e-12:
        raise FormatError(f"{where}: Huffman code lengths violate the Kraft inequality")
    total_bits = 8 * len(payload)
    if count > total_bits:  # every code is at least one bit long
        raise FormatError(f"{where}: {count} symbols cannot fit in {total_bits} payload bits")
    max_length = int(lengths.max())
    codes = canonical_codes(lengths)
    # Per-length canonical tables: left-justified first code and symbols in canonical order.
    order = np.lexsort((np.arange(len(lengths)), lengths))
    order = order[lengths[order] > 0]
    sorted_lengths = lengths[order]
    sorted_codes = codes[order]
    left_justified = sorted_codes << (max_length - sorted_lengths).astype(np.uint64)
    out = np.empty(count, dtype=np.int64)
    bit, index = 0, 0
    while index < count:
        if bit >= total_bits:
            raise FormatError(f"{where}: Huffman payload ends after {index} of {count} symbols")
        base, block_end = bit, min(total_bits, bit + _BLOCK_BITS)
        window = _windows(payload, base, block_end, max_length)  # (block,) uint64
        # Codes left-justified increase in canonical order, so the last one <= the window is
        # the code that prefixes it (checked below).
        position = np.maximum(np.searchsorted(left_justified, window, side="right") - 1, 0)
        next_start = (np.arange(base, block_end) + sorted_lengths[position]).tolist()
        first = index
        starts = []
        while index < count and bit < block_end:
            starts.append(bit - base)
            bit = next_start[bit - base]
            index += 1
        found = position[starts]
        prefix = window[starts] >> (max_length - sorted_lengths[found]).astype(np.uint64)
        if np.any(prefix != sorted_codes[found]):
            raise FormatError(f"{where}: Huffman payload holds an invalid code")
        out[first:index] = order[found]
    if bit > total_bits or total_bits - bit >= 8:
        raise FormatError(f"{where}: Huffman payload length does not match {count} symbols")
    return out


def _windows(payload: np.ndarray, start: int, end: int, width: int) -> np.ndarray:
    """(end - start,) uint64: the ``width`` bits starting at each bit position, MSB first,
    zero padded past the payload's end."""
    first_byte, last_byte = start // 8, min(len(payload), (end + width + 7) // 8)
    bits = np.unpackbits(payload[first_byte:last_byte]).astype(np.uint64)
    offset = start - 8 * first_byte
    count = end - start
    padded = np.concatenate([bits[offset:], np.zeros(count + width, dtype=np.uint64)])
    window = np.zeros(count, dtype=np.uint64)
    for shift in range(width):
        window = (window << np.uint64(1)) | padded[shift:shift + count]
    return window
