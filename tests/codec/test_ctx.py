"""The context coder (stream coder 4), grid codebooks and format version 3.

Round trips over shapes, alphabets and structures; the vector coder against the one-symbol-
at-a-time reference; the context definition against a loop; grid codebooks bit for bit; every
structural check of a coder-4 body with its exact message; damaged bodies refused; the size
estimate against the real encode; files without version-3 features stay version 2.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from rdcompress.codec import (
    CODERS,
    QuantizedTensor,
    RawTensor,
    decode_index_stream,
    encode_index_stream,
    encode_rdz,
    entry_bytes,
    index_stream_cost,
    read_rdz,
    read_rdz_tensors,
    write_rdz,
)
from rdcompress.codec import ctx as ctx_module
from rdcompress.codec._bytes import ByteReader, encode_uint_table, encode_varint
from rdcompress.codec.ctx import ContextModel, contexts_of, decode_ctx, encode_ctx
from rdcompress.codec.grid import decode_grid, encode_grid, find_grid, grid_values
from rdcompress.codec.streams import decode_stream
from rdcompress.errors import ConfigError, FormatError

sys.path.insert(0, str(Path(__file__).parent))
from rdz_fixtures import CTX_MANIFEST, tiny_ctx_tensors  # noqa: E402


def structured(rows: int, cols: int, k: int, seed: int) -> np.ndarray:
    """(rows, cols) indices like quantized weights: a per-row scale (some rows near zero),
    runs along a row, mode in the middle of the alphabet."""
    rng = np.random.default_rng(seed)
    scale = rng.choice([0.3, 1.0, 3.0], size=(rows, 1)) * max(1, k // 8)
    smooth = np.cumsum(rng.laplace(size=(rows, cols)), axis=1) * 0.3
    levels = np.round(rng.laplace(size=(rows, cols)) * scale + smooth * (scale > 1))
    return np.clip(levels + k // 2, 0, k - 1).astype(np.int64)


def roundtrip(indices: np.ndarray, k: int) -> bytes:
    data = encode_index_stream(indices, k, "ctx")
    decoded = decode_index_stream(data, indices.shape, k)
    assert decoded.dtype == np.int64 and decoded.shape == indices.shape
    np.testing.assert_array_equal(decoded, indices)
    return data


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (5, 0), (1, 1), (3, 17), (64, 40),
                                   (8, 3, 5), (16, 4, 3, 3), (2, 1, 1, 1)])
@pytest.mark.parametrize("k", [1, 2, 5, 37])
def test_roundtrip_shapes_and_alphabets(shape, k):
    size = int(np.prod(shape))
    indices = structured(1, max(size, 1), k, seed=size + k)[0, :size].reshape(shape)
    roundtrip(indices, k)


@pytest.mark.parametrize("k", [1, 2, 3, 16, 64, 255, 300])
def test_roundtrip_random_and_structured_alphabets(k):
    rng = np.random.default_rng(k)
    roundtrip(rng.integers(0, k, size=(30, 50)), k)  # i.i.d.: ctx may fall back to coder 3
    data = roundtrip(structured(96, 72, k, seed=k), k)
    if k >= 3:
        assert data[0] == 4  # structure pays for contexts


def test_constant_and_empty_streams_are_constant():
    assert encode_index_stream(np.full((4, 4), 3), 5, "ctx")[0] == 0
    assert encode_index_stream(np.zeros((0, 4), np.int64), 5, "ctx")[0] == 0
    roundtrip(np.full((4, 4), 3), 5)


def test_symbols_far_from_the_mode_and_sparse_alphabets():
    rng = np.random.default_rng(3)
    indices = np.where(rng.random((40, 60)) < 0.9, 250, rng.choice([0, 7, 299], (40, 60)))
    roundtrip(indices, 300)


def test_vector_and_scalar_paths_agree(monkeypatch):
    """The vectorized coder and the one-symbol-at-a-time reference write the same bytes and
    read each other's (many lanes, short uneven segments)."""
    indices = structured(128, 144, 16, seed=5).reshape(-1)
    monkeypatch.setattr(ctx_module, "_BYTES_PER_LANE", 64)
    bodies = {}
    for name, threshold in (("vector", 1), ("scalar", 10 ** 9)):
        monkeypatch.setattr(ctx_module, "_SCALAR_BELOW_LANES", threshold)
        bodies[name], _ = encode_ctx(indices, 16, [144])
    assert bodies["vector"] == bodies["scalar"]
    assert ctx_module._read_model(ByteReader(bodies["vector"], "t"), indices.size, 16)[1] > 50
    for threshold in (1, 10 ** 9):
        monkeypatch.setattr(ctx_module, "_SCALAR_BELOW_LANES", threshold)
        np.testing.assert_array_equal(
            decode_ctx(ByteReader(bodies["vector"], "t"), indices.size, 16), indices)


def test_contexts_match_the_definition():
    """contexts_of against the spec read literally, one position at a time."""
    rng = np.random.default_rng(1)
    symbols = rng.integers(0, 7, size=60)
    model = ContextModel(cols=12, zero=3, classes=np.array([2, 0, 1, 2, 1]), n_classes=3,
                         n_buckets=3)
    for lanes in (1, 4, 7):
        segment = -(-60 // lanes)
        expected = []
        for i in range(60):
            left = 0
            if i % 12 != 0 and i % segment != 0:  # B = 3: is the neighbour 0, > 0, < 0
                difference = int(symbols[i - 1]) - 3
                left = 0 if difference == 0 else 1 if difference > 0 else 2
            expected.append(int(model.classes[i // 12]) * 3 + left)
        np.testing.assert_array_equal(contexts_of(symbols, model, lanes), expected)


def test_left_bucket_folds_signs():
    from rdcompress.codec.ctx import left_bucket

    previous = np.arange(10)  # d = previous - z = -4 .. 5 with z = 4
    assert left_bucket(previous, 4, 1).tolist() == [0] * 10
    assert left_bucket(previous, 4, 2).tolist() == [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]
    assert left_bucket(previous, 4, 3).tolist() == [2, 2, 2, 2, 0, 1, 1, 1, 1, 1]
    assert left_bucket(previous, 4, 4).tolist() == [3, 3, 3, 2, 0, 1, 3, 3, 3, 3]


def test_many_lanes_with_uneven_segments(monkeypatch):
    monkeypatch.setattr(ctx_module, "_BYTES_PER_LANE", 8)
    indices = structured(33, 29, 9, seed=2)  # 957 symbols: the last segment is short
    data = roundtrip(indices, 9)
    assert data[0] == 4


# ----------------------------------------------------------------------------- containers


def test_container_roundtrip_with_ctx(tmp_path):
    rng = np.random.default_rng(0)
    mask = rng.random(96 * 72) < 0.7
    dense = structured(96, 72, 16, seed=1)
    tensors = [
        QuantizedTensor("dense", (96, 8, 3, 3), "float32",
                        np.sort(rng.standard_normal(16)).astype(np.float32), dense.reshape(-1)),
        QuantizedTensor("pruned", (96, 72), "bfloat16", np.linspace(-1, 1, 16),
                        dense.reshape(-1)[mask], mask),
        QuantizedTensor("grid64", (96, 72), "float64", grid_values(0.01, -8, 16, "float64"),
                        dense.reshape(-1)),
        RawTensor("bias", np.arange(5, dtype=np.float32)),
    ]
    summary = write_rdz(tmp_path / "c.rdz", tensors, {"m": 1}, coder="ctx")
    assert summary.format_version == 3
    coders = {t.name: t.index_coder for t in summary.tensors}
    assert coders["dense"] == "ctx" and coders["grid64"] == "ctx"
    _, stored = read_rdz_tensors(tmp_path / "c.rdz")
    for original, back in zip(tensors[:3], stored[:3], strict=True):
        np.testing.assert_array_equal(back.indices, original.indices)
        if original.dtype != "bfloat16":  # a bfloat16 value codebook is stored rounded
            assert back.codebook.tobytes() == original.codebook.tobytes()
    contents = read_rdz(tmp_path / "c.rdz")
    assert contents.format_version == 3
    from rdcompress.codec.tensors import decode_tensor

    for tensor in tensors:
        assert contents.tensors[tensor.name].tobytes() == decode_tensor(tensor).tobytes()
    smaller = encode_rdz(tensors, {"m": 1}, coder="ans")[1]
    assert smaller.format_version == 2
    assert summary.file_bytes < smaller.file_bytes
    for tensor, entry in zip(tensors, summary.tensors, strict=True):
        assert entry_bytes(tensor, "ctx") == entry.bytes
    assert "ctx" in summary.format_table()
    from rdcompress.codec import inspect_rdz

    assert inspect_rdz(tmp_path / "c.rdz").to_dict() == summary.to_dict()  # rdcompress info


def test_files_without_version_3_features_stay_version_2():
    """A "ctx" file whose streams all fall back and whose codebooks are not grids is the very
    file "ans" writes."""
    rng = np.random.default_rng(4)
    tensors = [QuantizedTensor("w", (20, 30), "float32", np.array([-1.0, 0.3, 2.0]),
                               rng.integers(0, 3, size=600)),
               RawTensor("b", np.ones(3, np.float32))]
    ctx_file, summary = encode_rdz(tensors, {}, coder="ctx")
    assert summary.format_version == 2
    assert ctx_file == encode_rdz(tensors, {}, coder="ans")[0]


def test_coders_and_bad_coder():
    assert CODERS == ("ans", "huffman", "ctx")
    with pytest.raises(ConfigError, match=r"coder='zstd' is not supported; expected one of "
                                          r"\['ans', 'huffman', 'ctx'\]"):
        encode_rdz([], {}, coder="zstd")
    with pytest.raises(ConfigError, match="coder='x'"):
        entry_bytes(RawTensor("b", np.ones(3)), "x")
    with pytest.raises(ConfigError, match=r"indices span \[0, 5\], expected \[0, k=5\)"):
        encode_index_stream(np.arange(6), 5)
    with pytest.raises(ConfigError, match=r"shape \[4\] holds 4 elements, the indices 6"):
        encode_index_stream(np.arange(6), 6, shape=(4,))


def test_version_3_file_refuses_coder_4_in_version_2():
    data, _ = encode_rdz(tiny_ctx_tensors(), CTX_MANIFEST, coder="ctx", header_encoding="json")
    stream = [s for s in _sections(data) if s[:1] == b"\x04"][0]
    with pytest.raises(FormatError, match=r"^s: stream coder id 4 is not allowed in format "
                                          r"version 2 \(allowed: \[0, 2, 3\]\)$"):
        decode_stream(ByteReader(stream, "s"), 10 ** 6, 10 ** 6, version=2)


def _sections(data: bytes) -> list[bytes]:
    import json
    import struct

    length = struct.unpack_from("<I", data, 6)[0]
    header = json.loads(data[18:18 + length])
    out, offset = [], 18 + length
    for entry in header["t"]:
        for size in entry["l"]:
            out.append(data[offset:offset + size])
            offset += size
    return out


# ----------------------------------------------------------------------------- grid codebooks


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_grid_codebooks_are_found_and_exact(dtype):
    rng = np.random.default_rng(0)
    step_type = np.float64 if dtype == "float64" else np.float32
    for _ in range(200):
        step = step_type(rng.uniform(1e-4, 1.0) * 10.0 ** rng.integers(-3, 3))
        first, count = int(rng.integers(-300, 300)), int(rng.integers(2, 300))
        codebook = grid_values(float(step), first, count, dtype)
        found = find_grid(codebook, dtype)
        assert found is not None
        again = grid_values(found[0], found[1], count, dtype)
        assert again.tobytes() == codebook.tobytes()
        section = encode_grid(*found, count, dtype)
        decoded = decode_grid(ByteReader(section, "g"), dtype, numel=count)
        assert decoded.tobytes() == codebook.tobytes()


def test_non_grids_are_not_grids():
    assert find_grid(np.array([0.0, 0.1, 0.3], np.float32), "float32") is None
    assert find_grid(np.array([0.5], np.float32), "float32") is None
    grid = grid_values(0.25, -2, 5, "float32")
    grid[2] = -0.0  # the grid's 0.0 is +0.0: a different bit pattern
    assert find_grid(grid, "float32") is None
    nudged = grid_values(0.1, 0, 9, "float32")
    nudged[4] = np.nextafter(nudged[4], np.float32(1))
    assert find_grid(nudged, "float32") is None


@pytest.mark.parametrize("section,numel,message", [
    (np.float32(0.5).tobytes() + encode_varint(0) + encode_varint(5), 4,
     "grid codebook of 5 values; expected 1..4 for this tensor"),
    (np.float32(0.5).tobytes() + encode_varint(0) + encode_varint(0), 4,
     "grid codebook of 0 values; expected 1..4 for this tensor"),
    (np.float32(0.5).tobytes() + encode_varint(2 ** 54) + encode_varint(2), 4,
     "grid indices 134217728..134217729 exceed 2**52 in magnitude"),
    (np.float32(np.inf).tobytes() + encode_varint(0) + encode_varint(2), 4,
     "grid step is inf"),
    (np.float32(3e38).tobytes() + encode_varint(20) + encode_varint(2), 4,
     "the grid codebook holds inf"),
    (np.float32(0.5).tobytes() + encode_varint(0) + encode_varint(2) + b"x", 4,
     "1 unexpected trailing bytes"),
])
def test_bad_grid_sections(section, numel, message):
    if "2**52" in message:
        section = np.float32(0.5).tobytes() + encode_varint(2 ** 53 + 2) + encode_varint(2)
        message = (f"grid indices {2 ** 52 + 1}..{2 ** 52 + 2} exceed 2**52 in magnitude")
    with pytest.raises(FormatError, match=f"^g: {re.escape(message)}$"):
        decode_grid(ByteReader(section, "g"), "float32", numel)


# ----------------------------------------------------------------------------- bad bodies


def body(cols=4, zero=0, classes=1, buckets=1, class_bytes=b"", tables=None, lanes=1,
         payload=b"\x00\x00\x01\x00"):
    if tables is None:
        tables = bytes([4]) + encode_uint_table(np.array([8, 8]))
    return (encode_varint(cols) + encode_varint(zero) + bytes([classes, buckets]) + class_bytes
            + tables + encode_varint(lanes) + payload)


@pytest.mark.parametrize("data,message", [
    (body(cols=3), "context row length 3 does not divide the 8 symbols"),
    (body(cols=0), "context row length 0 does not divide the 8 symbols"),
    (body(zero=2), "zero symbol 2 is outside the alphabet [0, 2)"),
    (body(classes=9), "9 row classes x 1 left buckets; expected 1..8 x 1..4"),
    (body(buckets=0), "1 row classes x 0 left buckets; expected 1..8 x 1..4"),
    (encode_varint(4) + encode_varint(0) + bytes([2, 1]),
     "needs 1 more bytes at offset 4 but only 0 remain; the file is corrupted"),
    (body(classes=2, class_bytes=b"\x00", tables=b"\x00\x00"), "every context is unused"),
    (body(classes=3, class_bytes=b"\xf0", tables=b"\x00" * 3),
     "a row class is 3, at most 2"),
    (body(tables=bytes([17])), "context 0 precision 17 is above 16"),
    (body(tables=bytes([4]) + encode_uint_table(np.array([8, 7]))),
     "context 0 frequencies sum to 15, the model needs exactly 2**4"),
    (body(tables=b"\x00"), "every context is unused"),
    (body(lanes=0), "0 lanes for 8 symbols (expected 1..min(n, 4096))"),
    (body(lanes=9), "9 lanes for 8 symbols (expected 1..min(n, 4096))"),
    (body(payload=b"\x00\x00\x01"), "context-coder payload of 3 bytes cannot hold 1 states and "
                                    "whole 16-bit words"),
    (body(payload=b"\xff\xff\x00\x00"), "a context-coder state is below 2**16"),
    (body(payload=b"\x00\x00\x01\x00"), "context-coder payload ends after step 0 of 8"),
    (body(payload=b"\x00\x00\x01\x00" + b"\x00\x00" * 12),
     "context-coder payload does not end where 8 symbols do"),
])
def test_bad_ctx_bodies(data, message):
    with pytest.raises(FormatError, match=f"^b: {re.escape(message)}"):
        decode_ctx(ByteReader(data, "b"), 8, 2)


def test_unused_context_is_refused(monkeypatch):
    """A symbol decoded in a context whose table is absent is refused (both decoders)."""
    indices = structured(16, 64, 8, seed=3).reshape(-1)
    data, _ = encode_ctx(indices, 8, [64])
    model, _, _ = ctx_module._read_model(ByteReader(data, "b"), indices.size, 8)
    # Blank the table of the most used context: its precision byte becomes 0.
    contexts = contexts_of(indices, model, 1)
    busiest = int(np.bincount(contexts).argmax())
    blanked = _blank_context(data, indices.size, busiest)
    for threshold in (1, 10 ** 9):
        monkeypatch.setattr(ctx_module, "_SCALAR_BELOW_LANES", threshold)
        with pytest.raises(FormatError, match="unused context|payload|does not end"):
            decode_ctx(ByteReader(blanked, "b"), indices.size, 8)


def _blank_context(data: bytes, count: int, context: int) -> bytes:
    reader = ByteReader(data, "b")
    reader.read_varint(), reader.read_varint()
    n_classes, n_buckets = reader.read_u8(), reader.read_u8()
    if n_classes > 1:
        reader.read(((count // 64) * (n_classes - 1).bit_length() + 7) // 8)
    from rdcompress.codec._bytes import decode_uint_table

    for index in range(n_classes * n_buckets):
        start = reader.pos
        precision = reader.read_u8()
        if precision:
            decode_uint_table(reader, 8, 1 << precision)
        if index == context:
            return data[:start] + b"\x00" + data[reader.pos:]
    raise AssertionError("context not found")


def test_damaged_ctx_streams_are_refused_or_identical():
    """Truncations and bit flips anywhere in a coder-4 stream: FormatError or the very same
    symbols, never another exception (the container's CRCs would catch the rest)."""
    indices = structured(48, 36, 11, seed=9)
    data = encode_index_stream(indices, 11, "ctx")
    assert data[0] == 4
    rng = np.random.default_rng(0)
    outcomes = {"rejected": 0, "identical": 0, "different": 0}
    for trial in range(300):
        damaged = bytearray(data)
        if trial % 3 == 0:
            damaged = damaged[:int(rng.integers(0, len(data)))]
        else:
            position = int(rng.integers(0, len(data)))
            damaged[position] ^= 1 << int(rng.integers(0, 8))
        try:
            decoded = decode_index_stream(bytes(damaged), indices.shape, 11)
        except FormatError:
            outcomes["rejected"] += 1
        else:
            outcomes["identical" if np.array_equal(decoded, indices) else "different"] += 1
    assert outcomes["rejected"] > 250, outcomes


# ----------------------------------------------------------------------------- the estimate


@pytest.mark.parametrize("coder", ["ans", "huffman", "ctx"])
def test_cost_estimate_agrees_with_the_encode(coder):
    """Within 1 % (and 8 bytes) on weight-like streams of every size the writer meets."""
    for rows, cols, k in [(16, 27, 9), (64, 144, 16), (256, 196, 33), (120, 400, 64),
                          (10, 84, 5), (300, 50, 200)]:
        indices = structured(rows, cols, k, seed=rows + k)
        real = len(encode_index_stream(indices, k, coder))
        estimate = index_stream_cost(indices, None, k, coder)
        assert abs(estimate - real) <= max(0.01 * real, 8), (rows, cols, k, estimate, real)
    assert index_stream_cost(np.full(9, 2), None, 3, coder) == len(
        encode_index_stream(np.full(9, 2), 3, coder))


def test_hostile_tables_stay_within_the_memory_bound():
    """32 contexts at precision 16 declared in ~150 bytes, decoded by the vector path: the
    lookup tables (at most 32 x 2**16 int32 slots) stay within the corpus's memory bound."""
    import tracemalloc

    sys.path.insert(0, str(Path(__file__).parent))
    from mutation_corpus import memory_bound

    count, lanes = 4096, 64
    table = bytes([16]) + encode_uint_table(np.array([1 << 15, 1 << 15]))
    hostile = (encode_varint(64) + encode_varint(0) + bytes([8, 4]) + bytes(64 * 3 // 8)
               + table * 32 + encode_varint(lanes) + (1 << 16).to_bytes(4, "little") * lanes)
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="payload ends|does not end"):
            decode_ctx(ByteReader(hostile, "b"), count, 2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < memory_bound(len(hostile) + 100), peak


def test_kernel_rows_are_chosen_when_kernels_differ():
    """A conv weight whose kernels have their own scales (some all-zero): the writer picks a
    row per kernel (cols = kh * kw) over a row per filter, and the file round-trips."""
    rng = np.random.default_rng(8)
    scale = rng.choice([0.0, 0.5, 2.5], size=(32, 16, 1, 1))
    indices = np.clip(np.round(rng.laplace(size=(32, 16, 3, 3)) * scale) + 6, 0, 12)
    indices = indices.astype(np.int64)
    data = roundtrip(indices, 13)
    assert data[0] == 4
    reader = ByteReader(data, "s")
    reader.read_u8(), reader.read_varint(), reader.read_varint()
    model, _, _ = ctx_module._read_model(reader, indices.size, 13)
    assert model.cols == 9 and model.n_classes > 1
    from rdcompress.codec.ctx import candidate_cols

    assert candidate_cols(indices.size, indices.shape) == (144, 9)
    assert candidate_cols(indices.size, (32, 144)) == (144,)
    assert candidate_cols(10, (10,)) == (10,)
    assert candidate_cols(6, None) == (6,)
