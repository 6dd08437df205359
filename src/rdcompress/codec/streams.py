"""Self-describing coded symbol streams: which coder, how many symbols, the alphabet, the body.

Layout of a stream (all integers LEB128 varints unless noted)::

    u8 coder      0 = constant (every symbol equal; also the empty stream), 1 = ANS, 2 = Huffman
    n             number of symbols
    k             alphabet size; symbols are in [0, k)
    body          constant: the symbol (absent when n = 0); ANS / Huffman: see those modules

A stream with fewer than two distinct symbols is always written as "constant": it carries no
information, so it costs no payload bits whatever coder was asked for.
"""

from __future__ import annotations

import numpy as np

from rdcompress.codec._bytes import ByteReader, encode_varint
from rdcompress.codec.ans import decode_ans, encode_ans
from rdcompress.codec.huffman import decode_huffman, encode_huffman
from rdcompress.errors import ConfigError, FormatError

CODER_IDS = {"constant": 0, "ans": 1, "huffman": 2}
CODER_NAMES = {value: key for key, value in CODER_IDS.items()}
# A sanity bound against hostile files asking for absurd allocations (2**40 symbols).
_MAX_SYMBOLS = 1 << 40


def encode_stream(symbols: np.ndarray, alphabet_size: int, coder: str) -> bytes:
    """(n,) integer symbols in [0, alphabet_size) -> stream bytes."""
    if coder not in ("ans", "huffman"):
        raise ConfigError(f"coder={coder!r} is not supported; expected 'ans' or 'huffman'")
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
    body = encode_ans(symbols, alphabet_size) if coder == "ans" else encode_huffman(
        symbols, alphabet_size
    )
    return bytes([CODER_IDS[coder]]) + head + body


def decode_stream(reader: ByteReader) -> tuple[np.ndarray, int, str]:
    """Read one stream, consuming ``reader`` to its end. Returns (symbols, alphabet size, coder)."""
    coder_id = reader.read_u8()
    if coder_id not in CODER_NAMES:
        raise FormatError(f"{reader.where}: unknown stream coder id {coder_id}")
    count = reader.read_varint()
    alphabet_size = reader.read_varint()
    if count > _MAX_SYMBOLS or alphabet_size < 1 or alphabet_size > _MAX_SYMBOLS:
        raise FormatError(
            f"{reader.where}: implausible stream size (n={count}, k={alphabet_size})"
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
        symbols = decode_ans(reader, count, alphabet_size)
    else:
        symbols = decode_huffman(reader, count, alphabet_size)
    return symbols, alphabet_size, coder
