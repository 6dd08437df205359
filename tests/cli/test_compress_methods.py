"""`rdcompress compress` with the methods beyond pruning and quantization: low rank (every
metric, whitening fed by --data) and randomized greedy compression (scored on --data's loss)."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

import rdcompress
from rdcompress.cli.main import main
from rdcompress.models import build


def _model_file(tmp_path):
    """A digits-mlp with random weights, saved as a zoo model's weights (no training)."""
    torch.manual_seed(0)
    path = tmp_path / "digits.safetensors"
    save_file(build("digits-mlp").state_dict(), str(path))
    return ["digits-mlp", "--weights", str(path)]


def test_lowrank_whiten_collects_moments_from_data(tmp_path, capsys):
    out = tmp_path / "lr.rdz"
    argv = ["compress", *_model_file(tmp_path), "--method", "lowrank", "--metric", "whiten",
            "--ratio", "0.3", "--allocation", "global", "--data", "digits", "--limit", "128",
            "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "rank" in printed and "file ratio" in printed
    module, manifest = rdcompress.load(out, return_manifest=True)
    assert manifest["method"] == "lowrank" and manifest["settings"]["metric"] == "whiten"
    factorized = rdcompress.load(out, factorized=True)
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(factorized(x), module(x), rtol=1e-4, atol=1e-5)


def test_lowrank_clusters_without_quantized_storage_is_refused(tmp_path, capsys):
    argv = ["compress", *_model_file(tmp_path), "--method", "lowrank", "--rank", "4",
            "--clusters", "8", "-o", str(tmp_path / "x.rdz")]
    assert main(argv) == 2
    assert "--lowrank-storage quantized" in capsys.readouterr().err
    assert not (tmp_path / "x.rdz").exists()


def test_whiten_without_data_says_what_to_pass(tmp_path, capsys):
    argv = ["compress", "digits-mlp", "--weights", _model_file(tmp_path)[2], "--method",
            "lowrank", "--metric", "whiten", "--rank", "4", "--data", "nonexistent-set",
            "-o", str(tmp_path / "x.rdz")]
    assert main(argv) == 2
    assert "nonexistent-set" in capsys.readouterr().err


def test_greedy_quantize_writes_a_sum_composite_with_an_honest_ratio(tmp_path, capsys):
    out = tmp_path / "g.rdz"
    argv = ["compress", *_model_file(tmp_path), "--method", "greedy-quantize", "--grid-k", "2",
            "--alpha", "0.5", "--data", "digits", "--limit", "64", "-o", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    module, manifest = rdcompress.load(out, return_manifest=True)
    assert manifest["method"] == "greedy-quantize" and manifest["composites"]
    summary = rdcompress.codec.inspect_rdz(out)
    assert summary.original_bytes == manifest["original_bytes"]  # parts are not counted twice
    # about half of the weights stay fp32, so the file cannot be even 2x smaller
    assert 1.0 < summary.ratio < 2.0
