"""``rdcompress decompress`` and ``rdcompress info`` through their own parsers."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open

from rdcompress.cli import decompress, info
from rdcompress.codec import PrunedTensor, QuantizedTensor, RawTensor, read_rdz, write_rdz
from rdcompress.errors import FormatError


def run_command(module, argv):
    parser = argparse.ArgumentParser(prog="rdcompress")
    module.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def rdz_file(tmp_path):
    rng = np.random.default_rng(0)
    mask = rng.random(200) < 0.5
    tensors = [
        QuantizedTensor("layer.weight", (10, 20), "float32", np.array([-1, 0.5, 2], np.float32),
                        rng.integers(0, 3, size=200)),
        QuantizedTensor("layer2.weight", (10, 20), "bfloat16",
                        np.array([-1, 0.5], np.float32), rng.integers(0, 2, int(mask.sum())),
                        mask),
        PrunedTensor("layer3.weight", (200,), "float16", mask,
                     rng.standard_normal(int(mask.sum())).astype(np.float16)),
        RawTensor("layer.bias", np.arange(10, dtype=np.float32)),
        RawTensor("bn.num_batches_tracked", np.array(3, dtype=np.int64)),
    ]
    path = tmp_path / "model.rdz"
    write_rdz(path, tensors, {"method": "kmeans", "model": None})
    return path


def test_decompress_writes_safetensors(rdz_file, tmp_path, capsys):
    out = tmp_path / "weights.safetensors"
    assert run_command(decompress, ["decompress", str(rdz_file), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    expected = read_rdz(rdz_file).to_torch()
    with safe_open(str(out), framework="pt") as handle:
        assert json.loads(handle.metadata()["rdz_manifest"]) == {"method": "kmeans",
                                                                 "model": None}
        assert set(handle.keys()) == set(expected)
        for name, tensor in expected.items():
            got = handle.get_tensor(name)
            assert got.dtype == tensor.dtype and torch.equal(got, tensor)
    assert expected["layer2.weight"].dtype == torch.bfloat16


def test_decompress_default_output_and_bad_input(rdz_file, tmp_path):
    assert run_command(decompress, ["decompress", str(rdz_file)]) == 0
    assert rdz_file.with_suffix(".safetensors").exists()
    bad = tmp_path / "bad.rdz"
    bad.write_bytes(rdz_file.read_bytes()[:-3])
    with pytest.raises(FormatError, match="^truncated"):
        run_command(decompress, ["decompress", str(bad), "-o", str(tmp_path / "never.st")])
    assert not (tmp_path / "never.st").exists()


def test_info_table_and_json(rdz_file, capsys):
    assert run_command(info, ["info", str(rdz_file)]) == 0
    table = capsys.readouterr().out
    for needle in ("layer.weight", "layer2.weight", "quantized", "pruned", "raw",
                   "compression ratio", "paper formula", "bits/weight"):
        assert needle in table
    assert run_command(info, ["info", str(rdz_file), "--json"]) == 0
    parsed = json.loads(capsys.readouterr().out)
    summary = parsed["summary"]
    assert summary["file_bytes"] == rdz_file.stat().st_size
    assert parsed["manifest"]["method"] == "kmeans"
    assert [t["name"] for t in summary["tensors"]][:2] == ["layer.weight", "layer2.weight"]
    assert summary["ratio"] == pytest.approx(summary["original_bytes"] / summary["file_bytes"])


def test_help_texts(capsys):
    for module, name in ((decompress, "decompress"), (info, "info")):
        with pytest.raises(SystemExit):
            run_command(module, [name, "--help"])
        out = capsys.readouterr().out
        assert f"rdcompress {name}" in out and "examples:" in out
