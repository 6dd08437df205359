"""Self-describing coded symbol streams: which coder, how many symbols, the alphabet, the body.

Layout of a stream (all integers LEB128 varints unless noted)::

    u8 coder      0 = constant (every symbol equal; also the empty stream),
                  1 = ANS with constriction's float model (version-1 files only),
                  2 = Huffman, 3 = rANS with the format's integer model (version 2),
                  4 = context-modelled rANS for shaped index streams (versions 3, 4;
                  ctx.py);
                  other ids are reserved for future coders (a reader rejects them)
    n             number of symbols
    k             alphabet size; symbols are in [0, k)
    body          constant: the symbol (absent when n = 0); others: see their modules

A stream with fewer than two distinct symbols is always written as "constant": it carries no
information, so it costs no payload bits whatever coder was asked for.

The reader never trusts n or k: the caller says how many symbols the stream may hold (known
from the tensor's shape and mask) and how large the alphabet may be, and both are checked
before anything is allocated or any decoder runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rdcompress.codec._bytes import ByteReader, encode_varint
from rdcompress.codec.ctx import decode_ctx, encode_ctx
from rdcompress.codec.huffman import decode_huffman, encode_huffman
from rdcompress.codec.rans import MAX_PRECISION, decode_rans, encode_rans
from rdcompress.errors import ConfigError, FormatError

CODER_IDS = {"constant": 0, "ans-v1": 1, "huffman": 2, "ans": 3, "ctx": 4}
CODER_NAMES = {value: key for key, value in CODER_IDS.items()}
# The coders each format version may use.
VERSION_CODERS = {1: (0, 1, 2), 2: (0, 2, 3), 3: (0, 2, 3, 4), 4: (0, 2, 3, 4)}
# The coders a writer accepts (``coder=`` of encode_rdz / write_rdz / compress).
CODERS = ("ans", "huffman", "ctx")


def encode_stream(symbols: np.ndarray, alphabet_size: int, coder: str,
                  cols: int | Sequence[int] | None = None) -> bytes:
    """(n,) integer symbols in [0, alphabet_size) -> stream bytes.

    ``coder`` "ctx" views the symbols as a (n // cols, cols) matrix (``cols``: a row length, or
    several to choose from, each dividing n; None = one row) and writes coder 4, or coder 3
    when its model would use one context only (an order-0 model, which coder 3 stores more
    cheaply).
    """
    if coder not in CODERS:
        raise ConfigError(f"coder={coder!r} is not supported; expected one of {list(CODERS)}")
    symbols = np.asarray(symbols, dtype=np.int64).reshape(-1)
    if alphabet_size < 1:
        raise ConfigError(f"alphabet_size={alphabet_size} should be >= 1")
    if symbols.size and (symbols.min() < 0 or symbols.max() >= alphabet_size):
        raise ConfigError(
            f"symbols span [{symbols.min()}, {symbols.max()}] but the alphabet is "
            f"[0, {alphabet_size}); indices must be < the codebook size"
        )
    head = encode_varint(symbols.size) + encode_varint(alphabet_size)
    if symbols.size == 0 or bool(np.all(symbols == symbols[0])):
        body = encode_varint(int(symbols[0])) if symbols.size else b""
        return bytes([CODER_IDS["constant"]]) + head + body
    if coder in ("ans", "ctx") and len(np.unique(symbols)) > 1 << MAX_PRECISION:
        coder = "huffman"  # the integer models have 2**16 slots: more symbols than that
    if coder == "ctx":
        options = [symbols.size] if cols is None else [cols] if isinstance(cols, int) else list(
            cols)
        for option in options:
            if not 1 <= option <= symbols.size or symbols.size % option:
                raise ConfigError(f"cols={option} should divide the {symbols.size} symbols")
        body, contexts_used = encode_ctx(symbols, alphabet_size, options)
        if contexts_used > 1:
            return bytes([CODER_IDS["ctx"]]) + head + body
        coder = "ans"
    body = encode_rans(symbols, alphabet_size) if coder == "ans" else encode_huffman(
        symbols, alphabet_size
    )
    return bytes([CODER_IDS[coder]]) + head + body


def decode_stream(reader: ByteReader, max_symbols: int, max_alphabet: int,
                  version: int = 2) -> tuple[np.ndarray, int, str]:
    """Read one stream, consuming ``reader`` to its end. Returns (symbols, alphabet size, coder).

    ``max_symbols`` / ``max_alphabet`` bound n and k (FormatError beyond); ``version`` is the
    file's format version, which decides the coders allowed.
    """
    coder_id = reader.read_u8()
    if coder_id not in VERSION_CODERS.get(version, ()):
        known = "unknown" if coder_id not in CODER_NAMES else "not allowed"
        raise FormatError(
            f"{reader.where}: stream coder id {coder_id} is {known} in format version "
            f"{version} (allowed: {list(VERSION_CODERS.get(version, ()))})"
        )
    count = reader.read_varint()
    alphabet_size = reader.read_varint()
    if count > max_symbols:
        raise FormatError(
            f"{reader.where}: the stream declares {count} symbols, at most {max_symbols} fit "
            f"this tensor"
        )
    if not 1 <= alphabet_size <= max_alphabet:
        raise FormatError(
            f"{reader.where}: the stream's alphabet size {alphabet_size} is outside "
            f"1..{max_alphabet}"
        )
    coder = CODER_NAMES[coder_id]
    if coder == "constant":
        if count == 0:
            symbols = np.zeros(0, dtype=np.int64)
        else:
            symbol = reader.read_varint()
            if symbol >= alphabet_size:
                raise FormatError(f"{reader.where}: symbol {symbol} >= alphabet {alphabet_size}")
            symbols = np.full(count, symbol, dtype=np.int64)
        reader.expect_end()
    elif coder == "ans":
        symbols = decode_rans(reader, count, alphabet_size)
    elif coder == "ctx":
        symbols = decode_ctx(reader, count, alphabet_size)
    elif coder == "ans-v1":
        from rdcompress.codec.ans import decode_ans  # constriction: version-1 files only

        symbols = decode_ans(reader, count, alphabet_size)
    else:
        symbols = decode_huffman(reader, count, alphabet_size)
    return symbols, alphabet_size, coder
