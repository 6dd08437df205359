"""Bounded hypothesis fuzzing: random containers round-trip; random damage is always caught."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rdcompress.codec import PrunedTensor, QuantizedTensor, RawTensor, decode_rdz, encode_rdz
from rdcompress.codec.tensors import decode_tensor
from rdcompress.errors import FormatError

FUZZ = settings(max_examples=40, deadline=None)


@st.composite
def tensor_lists(draw):
    tensors = []
    for index in range(draw(st.integers(0, 4))):
        shape = tuple(draw(st.lists(st.integers(0, 7), min_size=0, max_size=3)))
        numel = int(np.prod(shape, dtype=np.int64))
        seed = draw(st.integers(0, 2 ** 32 - 1))
        rng = np.random.default_rng(seed)
        kind = draw(st.sampled_from(["raw", "quantized", "pruned"]))
        dtype = draw(st.sampled_from(["float32", "float16", "float64"]))
        name = f"t{index}"
        if kind == "raw":
            tensors.append(RawTensor(name, rng.standard_normal(shape).astype(dtype)))
            continue
        mask = rng.random(numel) < draw(st.floats(0, 1))
        if kind == "pruned":
            values = rng.standard_normal(int(mask.sum())).astype(dtype)
            tensors.append(PrunedTensor(name, shape, dtype, mask, values))
            continue
        k = draw(st.integers(1, 40))
        dense = draw(st.booleans())
        kept = numel if dense else int(mask.sum())
        codebook = rng.standard_normal(k).astype(np.float64 if dtype == "float64" else np.float32)
        indices = rng.integers(0, k, size=kept) if draw(st.booleans()) else np.minimum(
            rng.geometric(0.5, size=kept) - 1, k - 1)
        tensors.append(QuantizedTensor(name, shape, dtype, codebook, indices,
                                       None if dense else mask))
    return tensors


@FUZZ
@given(tensor_lists(), st.sampled_from(["ans", "huffman"]), st.sampled_from(["json", "deflate"]))
def test_random_containers_roundtrip(tensors, coder, header_encoding):
    data, summary = encode_rdz(tensors, {"fuzz": True}, coder, header_encoding)
    assert summary.file_bytes == len(data)
    decoded = decode_rdz(data)
    for original, restored in zip(tensors, decoded.tensors, strict=True):
        assert decode_tensor(restored).tobytes() == decode_tensor(original).tobytes()


@FUZZ
@given(tensor_lists(), st.data())
def test_random_damage_is_a_format_error(tensors, data):
    encoded, _ = encode_rdz(tensors, {}, "ans")
    operation = data.draw(st.sampled_from(["truncate", "flip", "insert"]))
    position = data.draw(st.integers(0, len(encoded) - 1))
    if operation == "truncate":
        damaged = encoded[:position]
    elif operation == "flip":
        damaged = bytearray(encoded)
        damaged[position] ^= data.draw(st.integers(1, 255))
        damaged = bytes(damaged)
    else:
        damaged = encoded[:position] + data.draw(st.binary(min_size=1, max_size=8)) + encoded[
            position:]
    try:
        decode_rdz(damaged)
    except FormatError:
        return
    raise AssertionError(f"{operation} at {position} was not detected")
