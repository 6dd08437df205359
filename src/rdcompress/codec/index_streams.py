"""Index streams of bare integer tensors: encode, decode, and a fast size estimate.

The entry points a rate allocator or an outside benchmark (bench/vs_nncodec.py) needs without
building a container: :func:`encode_index_stream` codes the (any-shape) integer indices of a
quantized tensor exactly as ``encode_rdz`` codes a dense QuantizedTensor's index section,
:func:`decode_index_stream` inverts it, and :func:`index_stream_cost` predicts its size in
bytes from the coder's model alone (no entropy coder runs): within 0.05 % summed over
ResNet-20 / LeNet-5 and 1.1 % per layer (bench/ctx_coding.py; tests/codec/test_ctx.py checks
1 %). For "ctx" it runs the writer's model search, about a third of the encode's time, so it
is ~2-3x faster than encoding; for "ans" and "huffman" it builds only the table.
"""

from __future__ import annotations

import math

import numpy as np

from rdcompress.codec._bytes import ByteReader, encode_uint_table, encode_varint
from rdcompress.codec.ctx import candidate_cols, estimate_ctx_bytes
from rdcompress.codec.huffman import huffman_code_lengths
from rdcompress.codec.rans import MAX_PRECISION, choose_model, lane_bits_for
from rdcompress.codec.streams import CODERS, decode_stream, encode_stream
from rdcompress.errors import ConfigError


def _checked(indices, shape, alphabet_size: int, coder: str) -> tuple[np.ndarray, tuple]:
    if coder not in CODERS:
        raise ConfigError(f"coder={coder!r} is not supported; expected one of {list(CODERS)}")
    array = np.asarray(indices)
    if array.dtype.kind not in "iu":
        raise ConfigError(f"indices must be integers, got {array.dtype}")
    shape = tuple(int(d) for d in (array.shape if shape is None else shape))
    if math.prod(shape) != array.size:
        raise ConfigError(f"shape {list(shape)} holds {math.prod(shape)} elements, the indices "
                          f"{array.size}")
    symbols = array.reshape(-1).astype(np.int64)
    if alphabet_size < 1:
        raise ConfigError(f"k={alphabet_size} should be >= 1")
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet_size):
        raise ConfigError(f"indices span [{symbols.min()}, {symbols.max()}], expected "
                          f"[0, k={alphabet_size})")
    return symbols, shape


def encode_index_stream(indices, alphabet_size: int, coder: str = "ctx",
                        shape: tuple[int, ...] | None = None) -> bytes:
    """Integer indices in [0, k) (any shape; ``shape`` defaults to theirs) -> stream bytes,
    exactly the index section ``encode_rdz`` writes for a dense tensor of that shape."""
    symbols, shape = _checked(indices, shape, alphabet_size, coder)
    return encode_stream(symbols, alphabet_size, coder, candidate_cols(symbols.size, shape))


def decode_index_stream(data: bytes, shape: tuple[int, ...], alphabet_size: int) -> np.ndarray:
    """Inverse of :func:`encode_index_stream`: an int64 array of ``shape`` (any coder; the
    stream names its own). Raises FormatError on a damaged stream."""
    count = math.prod(int(d) for d in shape)
    symbols, declared, _ = decode_stream(ByteReader(data, "index stream"), count,
                                         alphabet_size, version=3)
    if declared != alphabet_size or len(symbols) != count:
        from rdcompress.errors import FormatError

        raise FormatError(f"index stream: {len(symbols)} symbols over alphabet {declared}, "
                          f"expected {count} over {alphabet_size}")
    return symbols.reshape(shape)


def index_stream_cost(indices, shape: tuple[int, ...] | None, alphabet_size: int,
                      coder: str = "ctx") -> float:
    """Estimated bytes of :func:`encode_index_stream` without running the entropy coder.

    "ans": the stored table exactly + the ideal code length under it + the lanes' states;
    "huffman": exact (code lengths from the same construction); "ctx": the context model the
    writer would choose, its estimated tables and ideal code length, the class bits and states
    (or the "ans" estimate when that model has one context, as the writer then falls back).
    """
    symbols, shape = _checked(indices, shape, alphabet_size, coder)
    head = 1 + len(encode_varint(symbols.size)) + len(encode_varint(alphabet_size))
    counts = np.bincount(symbols, minlength=alphabet_size)
    present = int((counts > 0).sum())
    if present < 2:
        return float(head + (len(encode_varint(int(symbols[0]))) if symbols.size else 0))
    if coder == "huffman" or present > 1 << MAX_PRECISION:
        return head + _huffman_bytes(counts)
    if coder == "ctx":
        contexts = estimate_ctx_bytes(symbols, alphabet_size,
                                      candidate_cols(symbols.size, shape))
        if contexts is not None:
            return head + contexts
    return head + _rans_bytes(counts)


def _rans_bytes(counts: np.ndarray) -> float:
    precision, frequencies = choose_model(counts)
    present = counts > 0
    payload = float((counts[present] * (precision - np.log2(frequencies[present]))).sum()) / 8
    table = len(encode_uint_table(frequencies))
    lane_bits = min(lane_bits_for(table + payload), int(np.log2(int(counts.sum()))))
    return 2 + table + 4 * (1 << lane_bits) + payload


def _huffman_bytes(counts: np.ndarray) -> float:
    lengths = huffman_code_lengths(counts)
    return len(encode_uint_table(lengths)) + (int((counts * lengths).sum()) + 7) // 8


__all__ = ["decode_index_stream", "encode_index_stream", "index_stream_cost"]
