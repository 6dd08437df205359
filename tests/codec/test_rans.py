"""The integer rANS coder (format version 2): the model is the stored integers, the lane-vector
decoder agrees with the one-symbol-at-a-time reference, and hostile bodies are refused."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rdcompress.codec import rans
from rdcompress.codec._bytes import ByteReader, encode_uint_table
from rdcompress.codec.rans import (
    STATE_LOW,
    _decode_lanes,
    _decode_scalar,
    _encode,
    _encode_scalar,
    decode_rans,
    encode_rans,
    quantize_counts,
)
from rdcompress.errors import FormatError


def reference_encode(symbols, frequencies, precision, lanes):
    """Textbook rANS written out with Python integers, one lane list at a time."""
    cumulative = [0]
    for f in frequencies[:-1]:
        cumulative.append(cumulative[-1] + int(f))
    states = [STATE_LOW] * lanes
    per_step = []
    steps = -(-len(symbols) // lanes)
    for step in reversed(range(steps)):
        words = []
        for lane in range(lanes):
            index = step * lanes + lane
            if index >= len(symbols):
                break
            s = int(symbols[index])
            f, x = int(frequencies[s]), states[lane]
            while x >= f * (1 << (32 - precision)):  # never loops twice when P <= 16
                words.append(x % 65536)
                x //= 65536
            states[lane] = (x // f) * (1 << precision) + x % f + cumulative[s]
        per_step.append(words)
    return states, [w for words in reversed(per_step) for w in words]


@pytest.mark.parametrize("seed", range(6))
def test_fast_paths_match_the_reference(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 40))
    n = int(rng.integers(2, 4000))
    symbols = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 0.4)))
    counts = np.bincount(symbols, minlength=k)
    precision = int(rng.choice([6, 10, 16]))
    if (counts > 0).sum() > 1 << precision:
        precision = 16
    frequencies = quantize_counts(counts, precision)
    lanes = 1 << int(rng.integers(0, min(7, int(np.log2(n)) + 1)))
    states, words = reference_encode(symbols, frequencies, precision, lanes)
    scalar = _encode_scalar(symbols, frequencies, precision, lanes)
    monkeypatch.setattr(rans, "_SCALAR_BELOW_LANES", 0)  # force the numpy lane path
    vector = _encode(symbols, frequencies, precision, lanes)
    for got_states, got_words in (scalar, vector):
        assert got_states.tolist() == states and got_words.tolist() == words
    for decode in (_decode_lanes, _decode_scalar):
        out, used, final = decode(np.array(states, np.uint64), np.array(words, np.uint16),
                                  frequencies, precision, n, "test")
        np.testing.assert_array_equal(out, symbols)
        assert used == len(words) and all(int(x) == STATE_LOW for x in final)


def test_quantize_counts_hand_example():
    # counts 5, 3, 0, 0.25-ish: M = 16, n = 9 -> floors 8, 5, 0, 1 = 14; remainders
    # 80-72=8, 48-45=3, -, 16-9=7 -> the two units go to symbols 0 and 3.
    assert quantize_counts(np.array([5, 3, 0, 1]), 4).tolist() == [9, 5, 0, 2]
    # Too many raised to 1: the excess comes off the cheapest decrement (the big symbol).
    assert quantize_counts(np.array([1000, 1, 1, 1]), 2).tolist() == [1, 1, 1, 1]
    frequencies = quantize_counts(np.array([10 ** 6, 1, 1, 1, 1, 1]), 4)
    assert frequencies.sum() == 16 and frequencies.tolist()[1:] == [1] * 5


def test_lanes_follow_payload_size():
    rng = np.random.default_rng(0)
    small = encode_rans(rng.integers(0, 4, size=300), 4)
    large = encode_rans(rng.integers(0, 256, size=200_000), 256)
    assert small[1] == 0  # one lane
    assert 1 << large[1] == 128  # ~200 KB of payload: 2**7 lanes of >= 1 KiB


def body(precision=8, lane_bits=0, frequencies=(128, 128), payload=b""):
    return bytes([precision, lane_bits]) + encode_uint_table(np.array(frequencies)) + payload


@pytest.mark.parametrize("data,count,message", [
    (body(precision=0), 4, "rANS precision 0 is outside 1..16"),
    (body(precision=17), 4, "rANS precision 17 is outside 1..16"),
    (body(lane_bits=13), 10 ** 6, "rANS lane count 2**13 does not fit 1000000 symbols (at most "
                                  "min(n, 2**12))"),
    (body(lane_bits=3), 4, "rANS lane count 2**3 does not fit 4 symbols (at most min(n, 2**12))"),
    (body(frequencies=(100, 100)), 4, "rANS frequencies sum to 200, the model needs exactly "
                                      "2**8"),
    (body(frequencies=(300, 0)), 4, "table entry 0 is 300, above the maximum 256"),
    (body(payload=b"\x00\x00\x01"), 4, "rANS payload of 3 bytes cannot hold 1 states and whole "
                                       "16-bit words"),
    (body(payload=b"\x00\x00\x00\x00"), 4, "an rANS state is below 2**16"),
    (body(payload=b"\x00\x00\x01\x00"), 4, "rANS payload ends after 0 of 4 symbols"),
    (body(payload=b"\x00\x00\x01\x00\x00\x00\x00\x00"), 1,
     "rANS payload does not end where 1 symbols do (1 of 2 words read); the stream is "
     "corrupted"),
])
def test_hostile_bodies(data, count, message):
    with pytest.raises(FormatError, match=f"^test: {re.escape(message)}$"):
        decode_rans(ByteReader(data, "test"), count, 2)


def test_near_certain_model_cannot_inflate_beyond_the_callers_count():
    """f = (256, 0): every symbol costs 0 bits, so 4 bytes could 'hold' any n; the caller's
    bound (kept positions) is what limits n, and here the decoder returns exactly n."""
    data = body(frequencies=(256, 0), payload=(STATE_LOW).to_bytes(4, "little"))
    np.testing.assert_array_equal(decode_rans(ByteReader(data, "test"), 1000, 2),
                                  np.zeros(1000, np.int64))
