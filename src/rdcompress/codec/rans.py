"""Interleaved rANS with an integer model defined by this format (stream coder 3, version 2).

The model is the stored integer frequency table ``f`` (k entries, sum exactly ``M = 2**P``,
1 <= P <= 16); symbol j owns the slots ``[c_j, c_j + f_j)`` with ``c_j = f_0 + ... + f_{j-1}``.
Nothing about the model depends on a library's float rounding: a file decodes the same with
any numpy, forever. (Version-1 files used ``constriction``'s float model; ``ans.py`` keeps
reading them.)

Coder (Duda's rANS, 32-bit state, 16-bit words): a state x lives in [2**16, 2**32).

    encode s:  if x >= f_s << (32 - P): emit x & 0xFFFF, x >>= 16
               x = (x // f_s) << P | (x % f_s) + c_s
    decode:    slot = x & (M - 1); s = the symbol owning slot
               x = f_s * (x >> P) + slot - c_s
               if x < 2**16: x = x << 16 | next word

One renormalization per symbol suffices because P <= 16. ``L = 2**g`` independent states
("lanes") code the symbols round robin (symbol i in lane i mod L), so the decoder advances all
lanes with one numpy operation per step of L symbols; every lane starts (encoder) and must end
(decoder) in state 2**16, which checks the payload's integrity for free.

Body layout: u8 P, u8 g, the frequency table (Rice, ``_bytes.encode_uint_table``), the L final
encoder states as u32 LE, then the 16-bit words LE in decoding order: the words that step t
reads, for its lanes in increasing order, for t = 0, 1, ...
"""

from __future__ import annotations

import heapq

import numpy as np

from rdcompress.codec._bytes import ByteReader, decode_uint_table, encode_uint_table
from rdcompress.errors import FormatError

MAX_PRECISION = 16
MAX_LANE_BITS = 12
STATE_LOW = 1 << 16
_CANDIDATE_PRECISIONS = (6, 8, 10, 12, 14, 16)
# Lanes cost 4 bytes each; the writer gives a lane ~1 KiB of payload (~0.4 % overhead).
_BYTES_PER_LANE = 1024
# Below this many lanes the per-step numpy overhead exceeds a plain Python loop.
_SCALAR_BELOW_LANES = 64


# ----------------------------------------------------------------------------- the model


def quantize_counts(counts: np.ndarray, precision: int) -> np.ndarray:
    """Counts -> integer frequencies summing to exactly 2**precision (present symbols >= 1).

    floor(count * M / n), raised to 1 for present symbols; a positive remainder goes one unit
    each to the largest fractional parts (ties: lower symbol); an excess is taken one unit at a
    time from the symbol whose decrement costs the fewest bits (count_j * log2(f_j/(f_j-1)),
    ties: lower symbol). Only the writer runs this: the file stores the result.
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    scale = 1 << precision
    present = counts > 0
    if int(present.sum()) > scale:
        raise ValueError(f"{int(present.sum())} present symbols do not fit precision {precision}")
    frequencies = np.where(present, np.maximum(counts * scale // total, 1), 0)
    missing = scale - int(frequencies.sum())
    if missing > 0:
        remainders = counts * scale - frequencies * total
        order = np.lexsort((np.arange(len(counts)), -remainders))
        order = order[present[order]][:missing]
        frequencies[order] += 1
    elif missing < 0:
        heap = [(float(counts[j]) * float(np.log2(frequencies[j] / (frequencies[j] - 1))), j)
                for j in np.flatnonzero(frequencies > 1).tolist()]
        heapq.heapify(heap)
        for _ in range(-missing):
            _, j = heapq.heappop(heap)
            frequencies[j] -= 1
            if frequencies[j] > 1:
                cost = float(counts[j]) * float(np.log2(frequencies[j] / (frequencies[j] - 1)))
                heapq.heappush(heap, (cost, j))
    return frequencies


def _model_cost_bits(counts: np.ndarray, frequencies: np.ndarray, precision: int) -> float:
    present = counts > 0
    payload = float((counts[present] * (precision - np.log2(frequencies[present]))).sum())
    return 8 * len(encode_uint_table(frequencies)) + payload


def choose_model(counts: np.ndarray) -> tuple[int, np.ndarray]:
    """The precision and table minimizing table + payload bits, among those that fit."""
    present = int((np.asarray(counts) > 0).sum())
    best = None
    for precision in _CANDIDATE_PRECISIONS:
        if present > 1 << precision:
            continue
        frequencies = quantize_counts(counts, precision)
        cost = _model_cost_bits(counts, frequencies, precision)
        if best is None or cost < best[0]:
            best = (cost, precision, frequencies)
    if best is None:
        raise ValueError(f"{present} present symbols exceed 2**{MAX_PRECISION}")
    return best[1], best[2]


def lane_bits_for(payload_bytes: float) -> int:
    """log2 of the lane count the writer uses for an estimated payload size."""
    lanes = max(1.0, payload_bytes / _BYTES_PER_LANE)
    return min(MAX_LANE_BITS, int(np.floor(np.log2(lanes))))


# ----------------------------------------------------------------------------- coding


def encode_rans(symbols: np.ndarray, alphabet_size: int) -> bytes:
    """Body of a stream with >= 2 symbols (see module doc). ``symbols`` (n,) in [0, k)."""
    symbols = np.asarray(symbols, dtype=np.int64)
    counts = np.bincount(symbols, minlength=alphabet_size)
    precision, frequencies = choose_model(counts)
    estimate = _model_cost_bits(counts, frequencies, precision) / 8
    lane_bits = min(lane_bits_for(estimate), int(np.log2(len(symbols))))
    states, words = _encode(symbols, frequencies, precision, 1 << lane_bits)
    return (bytes([precision, lane_bits]) + encode_uint_table(frequencies)
            + states.astype("<u4").tobytes() + words.astype("<u2").tobytes())


def _encode(symbols, frequencies, precision, lanes) -> tuple[np.ndarray, np.ndarray]:
    """(lanes,) final states and the words in decoding order."""
    if lanes < _SCALAR_BELOW_LANES:
        return _encode_scalar(symbols, frequencies, precision, lanes)
    cumulative = np.concatenate([[0], np.cumsum(frequencies)[:-1]]).astype(np.uint64)
    frequencies = frequencies.astype(np.uint64)
    count = len(symbols)
    steps = -(-count // lanes)
    states = np.full(lanes, STATE_LOW, dtype=np.uint64)
    chunks = []  # words emitted per step, produced for steps T-1 .. 0
    shift, bound_shift = np.uint64(precision), np.uint64(32 - precision)
    for step in range(steps - 1, -1, -1):
        step_symbols = symbols[step * lanes:(step + 1) * lanes]  # (active,)
        active = len(step_symbols)
        x = states[:active]
        f, c = frequencies[step_symbols], cumulative[step_symbols]
        emit = x >= (f << bound_shift)
        chunks.append((x[emit] & np.uint64(0xFFFF)).astype(np.uint16))
        x = np.where(emit, x >> np.uint64(16), x)
        states[:active] = ((x // f) << shift) + (x % f) + c
    words = np.concatenate(chunks[::-1]) if chunks else np.zeros(0, np.uint16)
    return states, words


def _encode_scalar(symbols, frequencies, precision, lanes) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_encode` one symbol at a time in plain Python (few lanes; the reference).

    Symbols are coded from the last to the first and the words reversed at the end: within a
    step that puts them in increasing lane order, and steps in decoding order.
    """
    cumulative = np.cumsum(frequencies) - frequencies
    f_of = frequencies[symbols].tolist()
    c_of = cumulative[symbols].tolist()
    bound_of = (frequencies[symbols] << (32 - precision)).tolist()
    states = [STATE_LOW] * lanes
    words = []
    for index in range(len(f_of) - 1, -1, -1):
        lane = index % lanes
        x = states[lane]
        if x >= bound_of[index]:
            words.append(x & 0xFFFF)
            x >>= 16
        quotient, remainder = divmod(x, f_of[index])
        states[lane] = (quotient << precision) + remainder + c_of[index]
    words.reverse()
    return np.array(states, dtype=np.uint64), np.array(words, dtype=np.uint16)


def decode_rans(reader: ByteReader, count: int, alphabet_size: int) -> np.ndarray:
    """Inverse of :func:`encode_rans`; consumes the rest of ``reader``. Returns (count,) int64.

    ``count`` and ``alphabet_size`` must already be bounded by the caller (they size the
    output and the table); everything else is checked here before it is used.
    """
    where = reader.where
    precision, lane_bits = reader.read_u8(), reader.read_u8()
    if not 1 <= precision <= MAX_PRECISION:
        raise FormatError(f"{where}: rANS precision {precision} is outside 1..{MAX_PRECISION}")
    lanes = 1 << lane_bits if lane_bits <= MAX_LANE_BITS else 0
    if not lanes or lanes > max(count, 1):
        raise FormatError(f"{where}: rANS lane count 2**{lane_bits} does not fit {count} "
                          f"symbols (at most min(n, 2**{MAX_LANE_BITS}))")
    frequencies = decode_uint_table(reader, alphabet_size, max_value=1 << precision)
    if int(frequencies.sum()) != 1 << precision:
        raise FormatError(f"{where}: rANS frequencies sum to {int(frequencies.sum())}, the "
                          f"model needs exactly 2**{precision}")
    states, words = read_payload(reader, lanes, where, "rANS", "an rANS")
    decode = _decode_scalar if lanes < _SCALAR_BELOW_LANES else _decode_lanes
    symbols, used, final = decode(states, words, frequencies, precision, count, where)
    check_payload_end(used, words, final, count, where, "rANS")
    return symbols


def read_payload(reader: ByteReader, lanes: int, where: str, coder: str,
                 a_coder: str) -> tuple[np.ndarray, np.ndarray]:
    """The rest of ``reader`` as ``lanes`` u32 states (each >= 2**16) and the u16 words after
    them; ``coder`` / ``a_coder`` name the coder in messages ("rANS" / "an rANS")."""
    payload = reader.rest()
    if len(payload) < 4 * lanes or (len(payload) - 4 * lanes) % 2:
        raise FormatError(f"{where}: {coder} payload of {len(payload)} bytes cannot hold "
                          f"{lanes} states and whole 16-bit words")
    states = np.frombuffer(payload[:4 * lanes], dtype="<u4").astype(np.uint64)
    if np.any(states < STATE_LOW):
        raise FormatError(f"{where}: {a_coder} state is below 2**16")
    return states, np.frombuffer(payload[4 * lanes:], dtype="<u2")


def check_payload_end(used: int, words: np.ndarray, final, count: int, where: str,
                      coder: str) -> None:
    """Every word read and every lane back at 2**16 after ``count`` symbols, or FormatError."""
    if used != len(words) or np.any(np.asarray(final) != STATE_LOW):
        raise FormatError(f"{where}: {coder} payload does not end where {count} symbols do "
                          f"({used} of {len(words)} words read); the stream is corrupted")


def _slot_symbols(frequencies: np.ndarray) -> np.ndarray:
    """(2**P,) the symbol owning each slot."""
    return np.repeat(np.arange(len(frequencies), dtype=np.int64), frequencies)


def _decode_lanes(states, words, frequencies, precision, count, where):
    """All lanes advance together: one numpy operation per step of ``lanes`` symbols."""
    lanes = len(states)
    owner = _slot_symbols(frequencies)
    cumulative = (np.cumsum(frequencies) - frequencies).astype(np.uint64)
    frequencies = frequencies.astype(np.uint64)
    mask, shift = np.uint64((1 << precision) - 1), np.uint64(precision)
    out = np.empty(count, dtype=np.int64)
    x = states.copy()
    used = 0
    for start in range(0, count, lanes):
        active = min(lanes, count - start)
        state = x[:active]
        slot = state & mask
        symbol = owner[slot]
        state = frequencies[symbol] * (state >> shift) + slot - cumulative[symbol]
        need = np.flatnonzero(state < np.uint64(STATE_LOW))
        if used + len(need) > len(words):
            raise FormatError(f"{where}: rANS payload ends after {start} of {count} symbols")
        state[need] = (state[need] << np.uint64(16)) | words[used:used + len(need)]
        used += len(need)
        x[:active] = state
        out[start:start + active] = symbol
    return out, used, x


def _decode_scalar(states, words, frequencies, precision, count, where):
    """The same decoder one symbol at a time in plain Python (few lanes; the reference)."""
    owner = _slot_symbols(frequencies)
    cumulative = np.cumsum(frequencies) - frequencies
    # Per slot: its symbol, that symbol's frequency and (slot - cumulative start).
    symbol_of, f_of = owner.tolist(), frequencies[owner].tolist()
    offset_of = (np.arange(len(owner)) - cumulative[owner]).tolist()
    word_list = words.tolist()
    x = [int(s) for s in states]
    lanes, mask = len(x), (1 << precision) - 1
    out = [0] * count
    used, available = 0, len(word_list)
    for index in range(count):
        lane = index % lanes
        state = x[lane]
        slot = state & mask
        state = f_of[slot] * (state >> precision) + offset_of[slot]
        if state < STATE_LOW:
            if used == available:
                raise FormatError(f"{where}: rANS payload ends after {index} of {count} "
                                  f"symbols")
            state = (state << 16) | word_list[used]
            used += 1
        x[lane] = state
        out[index] = symbol_of[slot]
    return np.array(out, dtype=np.int64), used, x


__all__ = ["choose_model", "decode_rans", "encode_rans", "quantize_counts"]
