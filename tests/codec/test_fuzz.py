"""Bounded hypothesis fuzzing: random containers round-trip; random damage is always caught."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rdcompress.codec import PrunedTensor, QuantizedTensor, RawTensor, decode_rdz, encode_rdz
from rdcompress.codec.grid import grid_values
from rdcompress.codec.tensors import decode_tensor
from rdcompress.errors import FormatError

# CI: 60 derandomized examples per test (seconds). Deeper local runs: RDZ_FUZZ_EXAMPLES=5000
# draws that many, randomly.
_EXAMPLES = int(os.environ.get("RDZ_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_EXAMPLES or 60, deadline=None, derandomize=not _EXAMPLES,
                database=None)


@st.composite
def tensor_lists(draw):
    tensors = []
    for index in range(draw(st.integers(0, 4))):
        shape = tuple(draw(st.lists(st.integers(0, 14), min_size=0, max_size=3)))
        numel = int(np.prod(shape, dtype=np.int64))
        seed = draw(st.integers(0, 2 ** 32 - 1))
        rng = np.random.default_rng(seed)
        kind = draw(st.sampled_from(["raw", "quantized", "pruned", "rows"]))
        dtype = draw(st.sampled_from(["float32", "float16", "float64"]))
        name = f"t{index}"
        if kind == "rows":  # rows of two kinds: the context coder codes these with coder 4
            rows, cols = draw(st.integers(8, 24)), draw(st.integers(16, 60))
            k = draw(st.integers(3, 40))
            wide = rng.integers(0, k, size=(rows, cols))
            narrow = np.clip(k // 2 + rng.integers(-1, 2, size=(rows, cols)), 0, k - 1)
            indices = np.where((np.arange(rows) % 3 == 0)[:, None], wide, narrow)
            codebook = grid_values(0.125, -(k // 2), k, dtype) if draw(st.booleans()) else (
                np.sort(rng.standard_normal(k)))
            tensors.append(QuantizedTensor(name, (rows, cols), dtype, codebook,
                                           indices.reshape(-1)))
            continue
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
        if draw(st.booleans()):  # a uniform grid: stored compactly by the "ctx" writer
            codebook = grid_values(float(np.float32(rng.uniform(1e-3, 1))),
                                   int(rng.integers(-50, 50)), k, dtype)
        indices = rng.integers(0, k, size=kept) if draw(st.booleans()) else np.minimum(
            rng.geometric(0.5, size=kept) - 1, k - 1)
        if draw(st.booleans()):  # rows of two kinds: the context coder's row classes pay
            indices = np.where(np.arange(kept) % 14 < 7, indices, indices // 3)
        tensors.append(QuantizedTensor(name, shape, dtype, codebook, indices,
                                       None if dense else mask))
    return tensors


@FUZZ
@given(tensor_lists(), st.sampled_from(["ans", "huffman", "ctx"]),
       st.sampled_from(["json", "deflate"]))
def test_random_containers_roundtrip(tensors, coder, header_encoding):
    data, summary = encode_rdz(tensors, {"fuzz": True}, coder, header_encoding)
    assert summary.file_bytes == len(data)
    decoded = decode_rdz(data)
    for original, restored in zip(tensors, decoded.tensors, strict=True):
        assert decode_tensor(restored).tobytes() == decode_tensor(original).tobytes()


@FUZZ
@given(tensor_lists(), st.sampled_from(["ans", "ctx"]), st.data())
def test_random_damage_is_a_format_error(tensors, coder, data):
    encoded, _ = encode_rdz(tensors, {}, coder)
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


# ------------------------------------------------------------ hostile headers and sections

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
import mutation_corpus as mc  # noqa: E402

BASES = mc.base_files()
ORIGINALS = {name: mc.load(data) for name, data in BASES.items()}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.sampled_from(["float32", "int8", "bool", "q", "p", "r"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3),
                                                                       children, max_size=3),
    max_leaves=8)


@FUZZ
@given(st.sampled_from(sorted(BASES)), st.data())
def test_fuzzed_header_fields_never_crash_or_load_wrong(name, data):
    """Any JSON value in any entry field or manifest key, the file CRC recomputed: rejected
    with FormatError or harmless, within the memory bound."""
    header, buffer = mc._split(BASES[name])
    target = data.draw(st.sampled_from(["entry", "manifest", "composite"]))
    value = data.draw(JSON_VALUES)
    if target == "entry":
        entry = data.draw(st.sampled_from(header["t"]))
        entry[data.draw(st.sampled_from(["n", "t", "d", "s", "l"]))] = value
    elif target == "manifest" or "composites" not in header["m"]:
        header["m"][data.draw(st.sampled_from(["composites", "model", "x"]))] = value
    else:
        recipe = header["m"]["composites"][data.draw(st.sampled_from(
            sorted(header["m"]["composites"])))]
        recipe[data.draw(st.sampled_from(["op", "parts", "shape", "dtype"]))] = value
    mutated = mc._join(BASES[name], mc._dump(header), buffer)
    verdict, message, _ = mc.judge(mutated, ORIGINALS[name])
    assert verdict in ("rejected", "identical"), (verdict, message)


@FUZZ
@given(st.sampled_from(sorted(BASES)), st.data())
def test_fuzzed_section_bytes_never_crash_or_load_wrong(name, data):
    """Any bytes in place of any section (lengths and file CRC made consistent)."""
    header, buffer = mc._split(BASES[name])
    index, section, offset = data.draw(st.sampled_from(mc._sections(header)))
    length = header["t"][index]["l"][section]
    original = buffer[offset:offset + length]
    replacement = data.draw(st.binary(max_size=64) | st.builds(
        lambda keep, tail: original[:keep] + tail, st.integers(0, len(original)),
        st.binary(max_size=12)))
    header["t"][index]["l"][section] = len(replacement)
    mutated = mc._join(BASES[name], mc._dump(header),
                       buffer[:offset] + replacement + buffer[offset + length:])
    verdict, message, _ = mc.judge(mutated, ORIGINALS[name])
    assert verdict in ("rejected", "identical"), (verdict, message)
