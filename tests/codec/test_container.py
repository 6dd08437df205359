"""Container round trips (every kind and dtype), accounting, the golden file, atomic writes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rdcompress.codec import (
    DQTensor,
    PrunedTensor,
    QuantizedTensor,
    RawTensor,
    encode_rdz,
    inspect_rdz,
    read_rdz,
    read_rdz_tensors,
    write_rdz,
)
from rdcompress.codec.entropy import paper_huffman_bits
from rdcompress.codec.tensors import decode_tensor
from rdcompress.errors import ConfigError

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helper module
from rdz_fixtures import (  # noqa: E402
    CTX_MANIFEST,
    DQ_MANIFEST,
    TINY_MANIFEST,
    tiny_ctx_tensors,
    tiny_dq_tensors,
    tiny_tensors,
    torch_bf16_raw,
)

GOLDEN = Path(__file__).parent / "golden"


def reference_dense(tensor) -> np.ndarray:
    """Obviously-correct decoding: a Python loop over positions, casting each value by torch."""
    if isinstance(tensor, RawTensor):
        return tensor.array
    if isinstance(tensor, PrunedTensor):
        dense = np.zeros(tensor.numel, dtype=tensor.values.dtype)  # storage dtype
        kept = 0
        for position in range(tensor.numel):
            if tensor.mask[position]:
                dense[position] = tensor.values[kept]
                kept += 1
        return dense.reshape(tensor.shape)
    if isinstance(tensor, DQTensor):
        return reference_dq(tensor)
    flat = torch.zeros(tensor.numel, dtype=getattr(torch, tensor.dtype))
    mask = np.ones(tensor.numel, bool) if tensor.mask is None else tensor.mask
    kept = 0
    for position in range(tensor.numel):
        if mask[position]:
            flat[position] = float(tensor.codebook[tensor.indices[kept]])
            kept += 1
    if tensor.dtype == "bfloat16":
        return flat.view(torch.int16).numpy().view(np.uint16).reshape(tensor.shape)
    return flat.numpy().reshape(tensor.shape)


def reference_dq(tensor: DQTensor) -> np.ndarray:
    """The spec's state machine one level at a time: Q0 (states 0, 1) 2k, Q1 (2, 3) 2k - sgn k,
    next state by the level's parity, state 0 at every row start; float32 then the dtype."""
    table = {0: (0, 2), 1: (2, 0), 2: (1, 3), 3: (3, 1)}
    flat = torch.zeros(tensor.numel, dtype=getattr(torch, tensor.dtype))
    state = 0
    for position, level in enumerate(int(k) for k in tensor.levels):
        if position % tensor.cols == 0:
            state = 0
        multiple = 2 * level if state < 2 else 2 * level - (level > 0) + (level < 0)
        value = np.float64(tensor.step) * multiple
        flat[position] = float(value if tensor.dtype == "float64" else np.float32(value))
        state = table[state][level % 2]
    if tensor.dtype == "bfloat16":
        return flat.view(torch.int16).numpy().view(np.uint16).reshape(tensor.shape)
    return flat.numpy().reshape(tensor.shape)


@pytest.mark.parametrize("coder", ["ans", "huffman"])
def test_roundtrip_every_kind(tmp_path, coder):
    tensors = tiny_tensors() + [torch_bf16_raw()]
    summary = write_rdz(tmp_path / "m.rdz", tensors, TINY_MANIFEST, coder=coder)
    contents = read_rdz(tmp_path / "m.rdz")
    assert contents.manifest == TINY_MANIFEST
    assert list(contents.tensors) == [t.name for t in tensors]
    for tensor in tensors:
        got = contents.tensors[tensor.name]
        expected = reference_dense(tensor)
        assert got.dtype == expected.dtype and got.shape == expected.shape
        assert got.tobytes() == expected.tobytes(), tensor.name  # bit-exact
    assert summary.file_bytes == os.path.getsize(tmp_path / "m.rdz")
    assert inspect_rdz(tmp_path / "m.rdz").to_dict() == summary.to_dict()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_quantized_dtypes_bit_exact(tmp_path, dtype):
    rng = np.random.default_rng(0)
    codebook = rng.standard_normal(7).astype(np.float64 if dtype == "float64" else np.float32)
    mask = rng.random(300) < 0.6
    indices = rng.integers(0, 7, size=int(mask.sum()))
    tensor = QuantizedTensor("w", (10, 30), dtype, codebook, indices, mask)
    write_rdz(tmp_path / "q.rdz", [tensor], {})
    contents = read_rdz(tmp_path / "q.rdz")
    expected = reference_dense(tensor)
    assert contents.tensors["w"].tobytes() == expected.tobytes()
    restored = contents.to_torch()["w"]
    assert str(restored.dtype) == f"torch.{dtype}"
    dense = torch.zeros(300, dtype=restored.dtype)
    dense[torch.from_numpy(mask)] = torch.from_numpy(codebook[indices]).to(restored.dtype)
    assert torch.equal(restored.reshape(-1), dense)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_pruned_dtypes_bit_exact(tmp_path, dtype):
    values = torch.randn(20, dtype=getattr(torch, dtype))
    mask = np.arange(50) % 5 < 2
    tensor = PrunedTensor("p", (5, 10), dtype, mask, values)
    write_rdz(tmp_path / "p.rdz", [tensor], {})
    restored = read_rdz(tmp_path / "p.rdz").to_torch()["p"].reshape(-1)
    assert torch.equal(restored[torch.from_numpy(mask)], values)
    assert torch.all(restored[torch.from_numpy(~mask)] == 0)


@pytest.mark.parametrize("array", [
    np.arange(6, dtype=np.int64).reshape(2, 3), np.array(True), np.zeros((0, 4), np.float32),
    np.array([1, 2, 255], dtype=np.uint8), np.float64(np.pi) * np.ones(3),
    np.array(-3, dtype=np.int32)])
def test_raw_buffers(tmp_path, array):
    write_rdz(tmp_path / "r.rdz", [RawTensor("x", array)], {"note": "raw"})
    got = read_rdz(tmp_path / "r.rdz").tensors["x"]
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)


def test_stored_objects_come_back(tmp_path):
    tensors = tiny_tensors()
    write_rdz(tmp_path / "m.rdz", tensors, {})
    _, stored = read_rdz_tensors(tmp_path / "m.rdz")
    quantized = stored[1]
    np.testing.assert_array_equal(quantized.indices, tensors[1].indices)
    np.testing.assert_array_equal(quantized.mask, tensors[1].mask)
    np.testing.assert_array_equal(decode_tensor(quantized), decode_tensor(tensors[1]))


def test_summary_accounting(tmp_path):
    tensors = tiny_tensors()
    summary = write_rdz(tmp_path / "m.rdz", tensors, TINY_MANIFEST)
    assert summary.file_bytes == summary.header_bytes + sum(t.bytes for t in summary.tensors)
    by_name = {t.name: t for t in summary.tensors}
    fc1 = by_name["fc1.weight"]
    assert fc1.codebook_bytes == 5 * 4 and by_name["fc2.weight"].codebook_bytes == 4 * 2
    counts = np.bincount(tensors[0].indices, minlength=5)
    assert fc1.paper_bits == paper_huffman_bits(counts)
    assert fc1.original_bytes == 48 * 4
    assert by_name["bn.num_batches_tracked"].original_bytes == 8
    assert summary.original_bytes == 4 * (48 + 48 + 12 + 6) + 8
    assert summary.ratio == pytest.approx(summary.original_bytes / summary.file_bytes)
    assert summary.bits_per_weight == pytest.approx(8 * summary.file_bytes / summary.numel)
    assert by_name["fc3.weight"].paper_bits == 3 * 32
    assert "paper formula" in summary.format_table()


def test_rejects_bad_input():
    with pytest.raises(ConfigError, match="tensor names must be unique; repeated: \\['a'\\]"):
        encode_rdz([RawTensor("a", np.zeros(1)), RawTensor("a", np.zeros(1))], {})
    with pytest.raises(ConfigError, match="indices span \\[0, 3\\], expected \\[0, k=3\\)"):
        QuantizedTensor("q", (2,), "float32", np.zeros(3, np.float32), np.array([0, 3]))
    with pytest.raises(ConfigError, match="2 indices for 1 kept positions"):
        QuantizedTensor("q", (2,), "float32", np.zeros(3, np.float32), np.array([0, 1]),
                        np.array([True, False]))
    with pytest.raises(ConfigError, match="manifest must be plain JSON"):
        encode_rdz([], {"x": float("nan")})
    with pytest.raises(ConfigError, match="declared as 'float32'"):
        RawTensor("r", np.zeros(2, np.float64), "float32")


# ------------------------------------------------------------------------- golden files


GOLDEN_CASES = {  # coder -> (version written, tensors, manifest)
    "ans": (2, tiny_tensors, TINY_MANIFEST),
    "huffman": (2, tiny_tensors, TINY_MANIFEST),
    "ctx": (3, tiny_ctx_tensors, CTX_MANIFEST),
}


@pytest.mark.parametrize("coder", sorted(GOLDEN_CASES))
def test_golden_file(coder):
    """The format must not change by accident. To change it on purpose, bump the version, keep
    the old golden files (they must go on decoding), then write the new ones:
    RDZ_REGENERATE_GOLDEN=1 python -m pytest tests/codec -k golden.
    A writer writes the lowest version able to express a file: "ans" and "huffman" files stay
    byte-identical version 2; "ctx" files with context-coded streams are version 3."""
    version, make_tensors, manifest = GOLDEN_CASES[coder]
    path = GOLDEN / f"tiny-{coder}-v{version}.rdz"
    data, summary = encode_rdz(make_tensors(), manifest, coder=coder)
    assert summary.format_version == version == data[4]
    if os.environ.get("RDZ_REGENERATE_GOLDEN"):
        path.write_bytes(data)
    assert data == path.read_bytes(), "the .rdz byte layout changed"
    contents = read_rdz(path)
    assert contents.format_version == version
    for tensor in make_tensors():
        assert contents.tensors[tensor.name].tobytes() == reference_dense(tensor).tobytes()


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.rdz")), ids=lambda p: p.name)
def test_every_golden_file_of_every_version_decodes(path):
    """Files written by any earlier release decode to the same tensors forever (tiny-*.rdz
    without a suffix are version 1, written with constriction's float ANS model)."""
    contents = read_rdz(path)
    version = int(path.stem.rsplit("-v", 1)[1]) if "-v" in path.stem else 1
    make_tensors, manifest = ((tiny_ctx_tensors, CTX_MANIFEST) if "-ctx-" in path.name
                              else (tiny_dq_tensors, DQ_MANIFEST) if "-dq-" in path.name
                              else (tiny_tensors, TINY_MANIFEST))
    assert contents.format_version == version
    assert contents.manifest == manifest
    assert list(contents.tensors) == [t.name for t in make_tensors()]
    for tensor in make_tensors():
        got, expected = contents.tensors[tensor.name], reference_dense(tensor)
        assert got.tobytes() == expected.tobytes(), tensor.name
        assert got.dtype == expected.dtype and got.shape == expected.shape, tensor.name
    assert inspect_rdz(path).format_version == version


# ------------------------------------------------------------------------- atomic writes


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "m.rdz"
    write_rdz(target, tiny_tensors(), {"generation": 1})
    before = target.read_bytes()

    def interrupted_fsync(fd):
        raise KeyboardInterrupt("simulated interrupt after the bytes were written")

    monkeypatch.setattr(os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        write_rdz(target, tiny_tensors(), {"generation": 2})
    with pytest.raises(KeyboardInterrupt):
        write_rdz(tmp_path / "fresh.rdz", tiny_tensors(), {})
    assert target.read_bytes() == before  # previous file intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.rdz"]  # no leftovers, no fresh
