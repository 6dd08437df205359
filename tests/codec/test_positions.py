"""Positions of pruned weights: every method round-trips; the writer picks the smallest."""

from __future__ import annotations

import numpy as np
import pytest

from rdcompress.codec._bytes import ByteReader, pack_bits
from rdcompress.codec.entropy import mask_entropy_bits
from rdcompress.codec.positions import _encode_gaps, decode_positions, encode_positions


def decode(data, numel):
    return decode_positions(ByteReader(data, "test"), numel)


def masks():
    rng = np.random.default_rng(0)
    yield "all kept", np.ones(100, dtype=bool)
    yield "none kept", np.zeros(100, dtype=bool)
    yield "single element", np.array([True])
    yield "empty", np.zeros(0, dtype=bool)
    yield "random 50%", rng.random(5000) < 0.5
    yield "random 3%", rng.random(5000) < 0.03
    yield "random 97%", rng.random(5000) < 0.97
    rows = np.zeros((64, 80), dtype=bool)
    rows[rng.random(64) < 0.4] = True
    yield "whole rows kept", rows.reshape(-1)
    yield "last only", np.eye(1, 777, 776, dtype=bool).reshape(-1)


@pytest.mark.parametrize("coder", ["ans", "huffman"])
@pytest.mark.parametrize("case", list(masks()), ids=lambda c: c[0])
def test_positions_roundtrip(case, coder):
    _, mask = case
    data = encode_positions(mask, coder)
    decoded, method = decode(data, mask.size)
    np.testing.assert_array_equal(decoded, mask)
    assert len(data) <= 1 + len(pack_bits(mask))  # never worse than a bitmap


@pytest.mark.parametrize("method,mask_kind", [(0, "bitmap"), (1, "bits"), (2, "gaps-kept"),
                                              (3, "gaps-pruned")])
def test_each_method_roundtrips_when_forced(method, mask_kind):
    rng = np.random.default_rng(method)
    mask = rng.random(3000) < 0.2
    if method == 0:
        data = bytes([0]) + pack_bits(mask)
    elif method == 1:
        from rdcompress.codec.streams import encode_stream

        data = bytes([1]) + encode_stream(mask.astype(np.int64), 2, "ans")
    else:
        chosen = mask if method == 2 else ~mask
        data = bytes([method]) + _encode_gaps(np.flatnonzero(chosen), "ans")
    decoded, name = decode(data, mask.size)
    np.testing.assert_array_equal(decoded, mask)
    assert name == mask_kind


def test_choice_follows_structure():
    rng = np.random.default_rng(1)
    scattered = rng.random(20000) < 0.1
    _, method = decode(encode_positions(scattered, "ans"), scattered.size)
    assert method == "bits"
    rows = np.zeros((100, 200), dtype=bool)
    rows[::3] = True
    _, method = decode(encode_positions(rows.reshape(-1), "ans"), rows.size)
    assert method.startswith("gaps")
    tiny = np.array([True, False, True])
    _, method = decode(encode_positions(tiny, "ans"), 3)
    assert method == "bitmap"


def test_scattered_mask_close_to_its_entropy():
    rng = np.random.default_rng(2)
    mask = rng.random(50000) < 0.1
    entropy_bytes = mask_entropy_bits(mask.size, int(mask.sum())) / 8
    assert len(encode_positions(mask, "ans")) <= 1.01 * entropy_bytes + 16


def test_gap_code_hand_example():
    # Kept positions 0, 3, 4 in a tensor of 8 -> gaps 0, 2, 0 -> buckets 0, 1, 0; offsets "1".
    mask = np.array([1, 0, 0, 1, 1, 0, 0, 0], dtype=bool)
    data = bytes([2]) + _encode_gaps(np.flatnonzero(mask), "huffman")
    decoded, _ = decode(data, 8)
    np.testing.assert_array_equal(decoded, mask)
    assert data[-1] == 0b1000_0000  # the single offset bit of gap 2 (= 2 + 1 - 2**1 = 1)
