"""Version-1 ANS streams (coder 1): a static categorical model coded by ``constriction``.

Kept to read version-1 files (and to write them in tests). Its model is whatever
``constriction``'s float approximation makes of the stored table, so it depends on that
library's rounding; version 2 writes coder 3 (``rans.py``), whose integer model is defined by
the format itself.

The model is the stream's own symbol histogram, stored in the file as a frequency table. Exact
counts can cost more bytes than they save, so the writer tries a few fixed-point precisions
P (frequencies summing to about 2**P) and keeps the one with the fewest total bits:
table bytes * 8 + n * cross-entropy(empirical || table). Encoder and decoder build the
``constriction`` model from the *same integer table* converted to float64 the same way, so they
agree bit for bit (``perfect=False`` is deterministic given identical float64 input).

Payload: ``constriction``'s uint32 words, little-endian, with up to three trailing zero bytes of
the last word dropped (the reader pads them back).
"""

from __future__ import annotations

import constriction
import numpy as np

from rdcompress.codec._bytes import ByteReader, decode_uint_table, encode_uint_table
from rdcompress.errors import FormatError

# Precision 0 means "exact counts"; others are fixed-point totals 2**P.
_CANDIDATE_PRECISIONS = (0, 4, 6, 8, 10, 12, 14, 16)


def _model(frequencies: np.ndarray):
    # Identical float64 input on both sides -> identical quantized model inside constriction.
    return constriction.stream.model.Categorical(
        frequencies.astype(np.float64), perfect=False
    )


def quantize_frequencies(counts: np.ndarray, precision: int) -> np.ndarray:
    """Counts -> integer frequencies summing to about 2**precision; present symbols stay >= 1."""
    counts = np.asarray(counts, dtype=np.int64)
    if precision == 0:
        return counts.copy()
    total = counts.sum()
    scaled = np.rint(counts * (2.0 ** precision) / total).astype(np.int64)
    return np.where(counts > 0, np.maximum(scaled, 1), 0)


def _table_cost_bits(counts: np.ndarray, frequencies: np.ndarray) -> float:
    """Bits of the stored table plus the expected payload under the table's model."""
    table_bits = 8 * (1 + len(encode_uint_table(frequencies)))
    present = counts > 0
    probabilities = frequencies[present] / frequencies.sum()
    return table_bits + float(-(counts[present] * np.log2(probabilities)).sum())


def choose_frequencies(counts: np.ndarray) -> tuple[int, np.ndarray]:
    """The precision and frequency table minimizing table + payload bits (estimate)."""
    best = None
    for precision in _CANDIDATE_PRECISIONS:
        frequencies = quantize_frequencies(counts, precision)
        cost = _table_cost_bits(counts, frequencies)
        if best is None or cost < best[0]:
            best = (cost, precision, frequencies)
    assert best is not None
    return best[1], best[2]


def encode_ans(symbols: np.ndarray, alphabet_size: int) -> bytes:
    """Model + payload of a non-empty stream with >= 2 distinct symbols (see module doc).

    Layout: u8 precision, the frequency table (``encode_uint_table``), payload words.
    """
    symbols = np.ascontiguousarray(symbols, dtype=np.int32)  # (n,)
    counts = np.bincount(symbols, minlength=alphabet_size)
    precision, frequencies = choose_frequencies(counts)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(symbols, _model(frequencies))
    payload = coder.get_compressed().astype("<u4").tobytes()
    trimmed = len(payload)
    while trimmed > len(payload) - 3 and trimmed > 0 and payload[trimmed - 1] == 0:
        trimmed -= 1
    return bytes([precision]) + encode_uint_table(frequencies) + payload[:trimmed]


def decode_ans(reader: ByteReader, count: int, alphabet_size: int) -> np.ndarray:
    """Inverse of :func:`encode_ans`; consumes the rest of ``reader``. Returns (count,) int64."""
    precision = reader.read_u8()
    if precision not in _CANDIDATE_PRECISIONS:
        raise FormatError(f"{reader.where}: unknown ANS table precision {precision}")
    # Precision 0 stores the exact counts (sum n); otherwise each entry is <= 2**P.
    frequencies = decode_uint_table(reader, alphabet_size,
                                    max_value=count if precision == 0 else 1 << precision)
    if frequencies.sum() <= 0:
        raise FormatError(f"{reader.where}: ANS frequency table is all zero")
    if precision == 0 and int(frequencies.sum()) != count:
        raise FormatError(f"{reader.where}: exact ANS counts sum to {int(frequencies.sum())}, "
                          f"not to the stream's {count} symbols")
    payload = bytes(reader.rest())
    payload += b"\x00" * (-len(payload) % 4)
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        symbols = coder.decode(_model(frequencies), count)
    except BaseException as error:  # constriction raises plain exceptions on bad data
        if isinstance(error, KeyboardInterrupt):
            raise
        raise FormatError(f"{reader.where}: ANS payload cannot be decoded ({error})") from None
    if not coder.is_empty():
        raise FormatError(f"{reader.where}: ANS payload has data left after {count} symbols")
    symbols = np.asarray(symbols, dtype=np.int64)
    if np.any(frequencies[symbols] == 0):
        raise FormatError(f"{reader.where}: ANS payload decodes a symbol of zero frequency")
    return symbols


__all__ = ["encode_ans", "decode_ans", "choose_frequencies", "quantize_frequencies"]
