"""``rdcompress compress``: argument handling and the file it writes (model loading faked)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from compress_helpers import fake_importance, tiny_net  # noqa: E402

import rdcompress.api  # noqa: E402
from rdcompress.cli import compress as compress_cli  # noqa: E402
from rdcompress.compress import PruneQuantizeConfig, QuantizeConfig, compress, load  # noqa: E402
from rdcompress.errors import ConfigError, ImportanceMismatchError  # noqa: E402


@pytest.fixture
def net(monkeypatch):
    model = tiny_net()

    def fake_load_model(source, weights=None, arch=None, trust_code=False):
        assert source == "tiny"
        return SimpleNamespace(module=model, spec=None, dataset=None,
                               preprocessing=SimpleNamespace(to_dict=lambda: {}))

    monkeypatch.setattr(rdcompress.api, "open_model", fake_load_model)
    return model


def run(argv):
    parser = argparse.ArgumentParser()
    compress_cli.register(parser.add_subparsers())
    args = parser.parse_args(["compress", *argv])
    return args.func(args)


def test_quantize_writes_the_same_weights_as_the_api(net, tmp_path, capsys):
    out = tmp_path / "q.rdz"
    assert run(["tiny", "--method", "quantize", "--clusters", "4", "--algorithm", "optimal",
                "-o", str(out), "--json", str(tmp_path / "s.json")]) == 0
    printed = capsys.readouterr().out
    assert "0.weight" in printed and "4.weight" in printed and "file ratio" in printed
    expected = compress(net, QuantizeConfig(clusters=4, algorithm="optimal")).state_dict()
    loaded = load(out, model=net).state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in expected.items())
    assert (tmp_path / "s.json").is_file()


def test_prune_quantize_with_an_importance_file(net, tmp_path):
    from rdcompress.importance import Importance

    fake = fake_importance(net)
    importance = Importance("gradient", fake.quadratic, None, None, 1, fake.weights_sha256, {})
    importance.save(tmp_path / "imp.safetensors")
    out = tmp_path / "pq.rdz"
    run(["tiny", "--method", "prune+quantize", "--ratio", "0.5", "--bits", "2",
         "--importance", str(tmp_path / "imp.safetensors"), "--coder", "huffman", "-o", str(out)])
    expected = compress(net, PruneQuantizeConfig(0.5, bits=2), fake).state_dict()
    module, manifest = load(out, model=net, return_manifest=True)
    assert manifest["objective"] == "gradient"
    assert all(torch.equal(module.state_dict()[n], v) for n, v in expected.items())
    with torch.no_grad():
        net[4].weight.add_(1.0)  # now the importance file belongs to other weights
    with pytest.raises(ImportanceMismatchError):
        run(["tiny", "--method", "prune", "--ratio", "0.5", "--importance",
             str(tmp_path / "imp.safetensors"), "-o", str(out)])


@pytest.mark.parametrize(("argv", "message"), [
    (["--method", "prune"], "needs --keep"),
    (["--method", "quantize"], "needs --clusters"),
    (["--method", "quantize", "--ratio", "0.5", "--bits", "2"], "for pruning"),
    (["--method", "prune", "--ratio", "0.5", "--bits", "2"], "for quantization"),
    (["--method", "prune", "--ratio", "0"], "outside"),
    (["--method", "prune", "--ratio", "0.5", "--objective", "fisher"], "needs data"),
])
def test_bad_arguments(net, tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message):
        run(["tiny", *argv, "-o", str(tmp_path / "x.rdz")])
    assert not (tmp_path / "x.rdz").exists()


def test_allocation_flags(net, tmp_path, capsys):
    out, report = tmp_path / "a.rdz", tmp_path / "report.json"
    run(["tiny", "--target-size", "1.2KB", "-o", str(out), "--report", str(report)])
    assert 0 < out.stat().st_size <= 1200
    printed = capsys.readouterr().out
    assert "allocation at slope" in printed and "share" in printed
    assert "layers" in json.loads(report.read_text())


@pytest.mark.parametrize("argv, message", [
    (["--method", "prune", "--keep", "0.5", "--target-ratio", "4"], "is for allocation"),
    (["--method", "allocate"], "needs a target"),
    ([], "give --method"),
    (["--target-ratio", "4", "--quantizer", "gptq"], "needs data"),
    (["--max-kl", "0.01"], "needs data"),
    (["--target-size", "10"], "smallest file"),
])
def test_bad_allocation_arguments(net, tmp_path, argv, message):
    with pytest.raises(ConfigError, match=message):
        run(["tiny", *argv, "-o", str(tmp_path / "x.rdz")])


@pytest.mark.parametrize("text, value", [("150KB", 150_000), ("1.5MB", 1_500_000),
                                         ("2KiB", 2048), ("1200", 1200), ("3 kb", 3000)])
def test_sizes_parse(text, value):
    from rdcompress.cli.compress import parse_size

    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["abc", "0", "-5KB", "12XB", ""])
def test_bad_sizes_are_refused(text):
    import argparse

    from rdcompress.cli.compress import parse_size

    with pytest.raises(argparse.ArgumentTypeError):
        parse_size(text)
