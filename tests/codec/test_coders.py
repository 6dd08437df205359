"""Entropy coders: round trips on random and adversarial streams, closeness to the entropy,
Huffman against an independent reference construction."""

from __future__ import annotations

import heapq
import re
import sys

import numpy as np
import pytest

from rdcompress.codec._bytes import (
    ByteReader,
    decode_uint_table,
    encode_uint_table,
    encode_varint,
)
from rdcompress.codec.ans import choose_frequencies, quantize_frequencies
from rdcompress.codec.entropy import empirical_entropy_bits, paper_huffman_bits
from rdcompress.codec.huffman import canonical_codes, huffman_code_lengths
from rdcompress.codec.rans import choose_model, quantize_counts
from rdcompress.codec.streams import decode_stream, encode_stream
from rdcompress.errors import ConfigError, FormatError

CODERS = ("ans", "huffman")


def roundtrip(symbols, k, coder):
    data = encode_stream(symbols, k, coder)
    decoded, alphabet_size, _ = decode_stream(ByteReader(data, "test"), len(symbols), k)
    assert alphabet_size == k
    np.testing.assert_array_equal(decoded, np.asarray(symbols, dtype=np.int64))
    return data


def adversarial_streams():
    rng = np.random.default_rng(1)
    yield "empty", np.zeros(0, dtype=np.int64), 4
    yield "one symbol once", np.array([3]), 5
    yield "one symbol many", np.full(1000, 2), 3
    yield "two symbols", np.array([0, 1]), 2
    yield "all distinct", rng.permutation(4096), 4096
    yield "huge alphabet sparse", rng.integers(0, 1 << 16, size=3000), 1 << 16
    skewed = np.zeros(20000, dtype=np.int64)
    skewed[rng.choice(20000, 7, replace=False)] = rng.integers(1, 9, size=7)
    yield "highly skewed", skewed, 9
    yield "last symbol only used", np.full(50, 99), 100
    fibonacci = np.repeat(np.arange(20), [1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377,
                                          610, 987, 1597, 2584, 4181, 6765])
    yield "fibonacci (deep code)", rng.permutation(fibonacci), 20


@pytest.mark.parametrize("coder", CODERS)
@pytest.mark.parametrize("case", list(adversarial_streams()), ids=lambda c: c[0])
def test_roundtrip_adversarial(case, coder):
    _, symbols, k = case
    roundtrip(symbols, k, coder)


@pytest.mark.parametrize("coder", CODERS)
def test_roundtrip_random(coder):
    rng = np.random.default_rng(0)
    for trial in range(20):
        k = int(rng.integers(1, 300))
        n = int(rng.integers(0, 3000))
        probabilities = rng.dirichlet(np.full(k, 0.3 + trial / 10))
        roundtrip(rng.choice(k, size=n, p=probabilities), k, coder)


def test_constant_stream_costs_no_payload():
    data = encode_stream(np.full(100000, 7), 16, "ans")
    # coder byte, n (3-byte varint), k, the symbol.
    assert data == bytes([0]) + encode_varint(100000) + bytes([16, 7])


@pytest.mark.parametrize("k,concentration", [(2, 1.0), (4, 1.0), (16, 0.5), (64, 1.0),
                                             (256, 2.0)])
def test_ans_within_one_percent_of_entropy(k, concentration):
    rng = np.random.default_rng(k)
    n = 20000
    symbols = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, concentration)))
    entropy_bytes = empirical_entropy_bits(symbols, k) / 8
    stream_bytes = len(encode_stream(symbols, k, "ans"))
    _, frequencies = choose_model(np.bincount(symbols, minlength=k))
    table_bytes = 2 + len(encode_uint_table(frequencies))  # + precision and lane bytes
    head_bytes = 1 + len(encode_varint(n)) + len(encode_varint(k))
    payload_bytes = stream_bytes - table_bytes - head_bytes
    assert payload_bytes <= 1.01 * entropy_bytes, (payload_bytes, entropy_bytes)
    if k <= 64:  # the stored model too: (k/2) log2(n) bits is negligible for small alphabets
        assert stream_bytes <= 1.01 * entropy_bytes, (stream_bytes, entropy_bytes)


def test_ans_skewed_stream_overhead_is_bounded():
    # Entropy ~ 0.08 bits/symbol: a fixed overhead dominates; bound it absolutely.
    rng = np.random.default_rng(5)
    symbols = (rng.random(50000) < 0.01).astype(np.int64)
    entropy_bytes = empirical_entropy_bits(symbols, 2) / 8
    assert len(encode_stream(symbols, 2, "ans")) <= entropy_bytes * 1.01 + 16


def reference_huffman_lengths(counts):
    """Textbook Huffman with a heap of (weight, id) and explicit parent pointers."""
    present = [int(s) for s in np.flatnonzero(counts)]
    if len(present) == 1:
        return {present[0]: 1}
    heap = [(int(counts[s]), i) for i, s in enumerate(present)]
    parent = {}
    heapq.heapify(heap)
    next_id = len(present)
    while len(heap) > 1:
        wa, a = heapq.heappop(heap)
        wb, b = heapq.heappop(heap)
        parent[a] = parent[b] = next_id
        heapq.heappush(heap, (wa + wb, next_id))
        next_id += 1
    lengths = {}
    for i, s in enumerate(present):
        depth, node = 0, i
        while node in parent:
            node, depth = parent[node], depth + 1
        lengths[s] = depth
    return lengths


@pytest.mark.parametrize("seed", range(8))
def test_huffman_matches_reference_average_length(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 200))
    counts = rng.integers(0, 1000, size=k) * (rng.random(k) < 0.8)
    counts[rng.integers(k)] += 1
    counts[(rng.integers(k) + 1) % k] += 1
    lengths = huffman_code_lengths(counts)
    reference = reference_huffman_lengths(counts)
    ours = int((counts * lengths).sum())
    theirs = sum(int(counts[s]) * length for s, length in reference.items())
    assert ours == theirs  # both optimal: equal total length (individual lengths may differ)
    n = counts.sum()
    entropy = empirical_entropy_bits(np.repeat(np.arange(k), counts), k)
    assert entropy <= ours <= entropy + n  # within 1 bit per symbol of the entropy
    assert np.sum(np.ldexp(1.0, -lengths[lengths > 0])) <= 1.0


def test_canonical_codes_hand_example():
    # Lengths A=2, B=1, C=3, D=3 -> canonical B=0, A=10, C=110, D=111.
    codes = canonical_codes(np.array([2, 1, 3, 3]))
    assert codes.tolist() == [0b10, 0b0, 0b110, 0b111]


def test_huffman_payload_size_equals_code_lengths():
    rng = np.random.default_rng(3)
    symbols = rng.choice(5, size=1001, p=[0.5, 0.25, 0.125, 0.0625, 0.0625])
    counts = np.bincount(symbols, minlength=5)
    bits = int((counts * huffman_code_lengths(counts)).sum())
    data = encode_stream(symbols, 5, "huffman")
    table = encode_uint_table(huffman_code_lengths(counts))
    header = 1 + len(encode_varint(1001)) + 1 + len(table)  # coder, n, k, code lengths
    assert len(data) == header + (bits + 7) // 8


def test_huffman_length_limit_still_roundtrips():
    counts = np.array([1, 1] + [2 ** i for i in range(1, 40)], dtype=np.int64)
    lengths = huffman_code_lengths(counts)
    assert lengths.max() <= 32
    assert np.sum(np.ldexp(1.0, -lengths[lengths > 0])) <= 1.0


def test_quantized_frequencies_keep_present_symbols():
    counts = np.array([1, 0, 10 ** 6, 3])
    for precision in (8, 12, 16):
        frequencies = quantize_frequencies(counts, precision)  # version 1
        assert frequencies[1] == 0 and np.all(frequencies[[0, 2, 3]] >= 1)
        frequencies = quantize_counts(counts, precision)  # version 2: sums to 2**P exactly
        assert frequencies[1] == 0 and np.all(frequencies[[0, 2, 3]] >= 1)
        assert frequencies.sum() == 1 << precision
    precision, frequencies = choose_frequencies(np.array([5, 5]))
    assert precision == 0 and frequencies.tolist() == [5, 5]  # cheapest exact table


def test_paper_formula_hand_computed():
    # m = 8: clusters of 4, 2, 1, 1 -> ceil(log2(8/4))=1, 2, 3, 3 bits; + 32 * 4 centroids.
    assert paper_huffman_bits(np.array([4, 2, 1, 1])) == 4 * 1 + 2 * 2 + 3 + 3 + 128
    # m_j = m costs 0 bits per weight; an empty cluster still costs its centroid.
    assert paper_huffman_bits(np.array([10, 0])) == 64


def test_encode_rejects_out_of_range_symbols():
    with pytest.raises(ConfigError, match=r"symbols span \[0, 4\] but the alphabet is \[0, 4\)"):
        encode_stream(np.array([0, 4]), 4, "ans")
    with pytest.raises(ConfigError, match="coder='zip' is not supported"):
        encode_stream(np.array([0]), 4, "zip")


@pytest.mark.parametrize("coder", CODERS)
def test_truncated_stream(coder):
    """Both coders detect truncation themselves: Huffman by the payload length, rANS because
    every lane must end in its initial state after exactly the payload's words (constriction's
    version-1 ANS could not: decoding from its exhausted stack was legal)."""
    rng = np.random.default_rng(0)
    symbols = rng.integers(0, 8, size=500)
    data = encode_stream(symbols, 8, coder)
    for cut in (1, 3, len(data) // 2, len(data) - 1):
        with pytest.raises(FormatError):
            decode_stream(ByteReader(data[:cut], "cut"), 500, 8)


@pytest.mark.parametrize("values", [[0], [5, 0, 300, 2 ** 33], list(range(50)), [0] * 10, []])
def test_uint_table_roundtrip(values):
    values = np.array(values, dtype=np.int64)
    data = encode_uint_table(values) + b"rest"
    reader = ByteReader(data, "table")
    np.testing.assert_array_equal(decode_uint_table(reader, len(values), 2 ** 33), values)
    assert reader.remaining == 4


def test_uint_table_hand_example():
    # [1, 2, 3]: r = 0 costs 2+3+4 = 9 bits, r = 1 costs 2+3+3 = 8 bits -> r = 1.
    # 1 -> "0"+"1", 2 -> "10"+"0", 3 -> "10"+"1": bits 01 100 101 -> 0110 0101.
    assert encode_uint_table(np.array([1, 2, 3])) == bytes([1, 0b01100101])


# --------------------------------------------------------------- declared sizes are bounded


def stream_head(coder: int, count: int, alphabet: int) -> bytes:
    return bytes([coder]) + encode_varint(count) + encode_varint(alphabet)


@pytest.mark.parametrize("data,limits,message", [
    (stream_head(0, 2 ** 40, 4) + b"\x01", (1000, 4),
     "the stream declares 1099511627776 symbols, at most 1000 fit this tensor"),
    (stream_head(3, 10, 2 ** 40), (10, 16), "the stream's alphabet size 1099511627776 is "
                                            "outside 1..16"),
    (stream_head(2, 10, 0), (10, 16), "the stream's alphabet size 0 is outside 1..16"),
    # Huffman: 1,000 symbols cannot fit 2 payload bytes (each code is >= 1 bit).
    (stream_head(2, 1000, 2) + encode_uint_table(np.array([1, 1])) + b"\x00\x00", (1000, 2),
     "1000 symbols cannot fit in 16 payload bits"),
    # A table of 16 entries at Rice r = 3 needs >= 64 bits; 1 byte remains.
    (stream_head(2, 10, 16) + bytes([3, 0]), (10, 16),
     "a table of 16 entries needs at least 64 bits, only 8 remain"),
    (stream_head(1, 10, 2) + bytes([0]), (10, 2),
     "stream coder id 1 is not allowed in format version 2 (allowed: [0, 2, 3])"),
    (stream_head(9, 10, 2), (10, 2),
     "stream coder id 9 is unknown in format version 2 (allowed: [0, 2, 3])"),
])
def test_declared_sizes_are_checked_before_allocation(data, limits, message):
    with pytest.raises(FormatError, match=f"^test: {re.escape(message)}$"):
        decode_stream(ByteReader(data, "test"), *limits)


def test_version_2_decodes_without_constriction(monkeypatch):
    """The version-2 model is the format's integers: decoding (and encoding) never imports the
    coder library whose float rounding defined version 1's model."""
    monkeypatch.setitem(sys.modules, "constriction", None)  # import constriction -> ImportError
    monkeypatch.delitem(sys.modules, "rdcompress.codec.ans", raising=False)
    rng = np.random.default_rng(3)
    symbols = rng.integers(0, 6, size=5000)
    data = encode_stream(symbols, 6, "ans")
    assert data[0] == 3  # coder 3: integer rANS
    decoded, _, _ = decode_stream(ByteReader(data, "test"), 5000, 6)
    np.testing.assert_array_equal(decoded, symbols)
