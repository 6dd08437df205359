"""Structured global pruning through compress() and the CLI; the CLI's one-line error paths."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from compress_helpers import fake_importance, tiny_net  # noqa: E402

import rdcompress.api  # noqa: E402
from rdcompress.cli.main import main  # noqa: E402
from rdcompress.compress import PruneConfig, PruneQuantizeConfig, compress, load  # noqa: E402
from rdcompress.pruning import kept_count, prune_scores, structured_global_masks  # noqa: E402

LAYERS = ("0.weight", "4.weight")  # conv (4, 1, 3, 3) and linear (10, 64)


@pytest.fixture
def net(monkeypatch):
    model = tiny_net()

    def fake_load_model(source, weights=None, arch=None, trust_code=False):
        if source != "tiny":
            raise AssertionError(source)
        return SimpleNamespace(module=model, spec=None, dataset=None,
                               preprocessing=SimpleNamespace(to_dict=lambda: {}))

    monkeypatch.setattr(rdcompress.api, "open_model", fake_load_model)
    return model


def cli(argv, tmp_path, capsys):
    """Run ``rdcompress compress tiny ARGV -o x.rdz`` through the real entry point."""
    code = main(["compress", "tiny", *argv, "-o", str(tmp_path / "x.rdz")])
    return code, capsys.readouterr()


def test_structured_global_through_compress(net):
    importance = fake_importance(net)
    compressed = compress(net, PruneConfig(0.3, scope="global", structured=True), importance)
    params = dict(net.named_parameters())
    scores = {n: prune_scores(params[n], importance.quadratic[n].double()) for n in LAYERS}
    expected = structured_global_masks(scores, 0.3)
    state = compressed.state_dict()
    total = sum(params[n].numel() for n in LAYERS)
    kept = 0
    for name in LAYERS:
        kept_mask = state[name] != 0
        assert torch.equal(kept_mask, expected[name] & (params[name] != 0))
        rows = expected[name].reshape(expected[name].shape[0], -1)
        assert (rows.any(dim=1) == rows.all(dim=1)).all() and rows.any()
        kept += compressed.layers[name].kept
    assert kept >= kept_count(total, 0.3) and kept < kept_count(total, 0.3) + 64


def test_structured_global_prune_quantize(net):
    config = PruneQuantizeConfig(0.5, clusters=3, scope="global", structured=True)
    compressed = compress(net, config, fake_importance(net))
    for name in LAYERS:
        w_hat = compressed.state_dict()[name]
        rows = (w_hat != 0).reshape(w_hat.shape[0], -1)
        assert rows.any(dim=1).any()  # the guard: no layer emptied
        assert torch.unique(w_hat[w_hat != 0]).numel() <= 3


def test_cli_structured_global(net, tmp_path, capsys):
    code, out = cli(["--method", "prune", "--ratio", "0.25", "--structured", "--scope", "global"],
                    tmp_path, capsys)
    assert code == 0, out.err
    module, manifest = load(tmp_path / "x.rdz", model=net, return_manifest=True)
    settings = manifest["settings"]
    assert settings["scope"] == "global" and settings["structured"] is True
    expected = compress(net, PruneConfig(0.25, scope="global", structured=True)).state_dict()
    assert all(torch.equal(module.state_dict()[n], expected[n]) for n in LAYERS)


@pytest.mark.parametrize(("argv", "message"), [
    # k larger than the distinct weights of a layer: names the layer and the limit
    (["--method", "quantize", "--clusters", "100"], r"layer '0\.weight' \(36 weights\): k=100"),
    (["--method", "quantize", "--clusters", "40", "--algorithm", "optimal"], "choose k <= 36"),
    (["--method", "prune+quantize", "--ratio", "0.1", "--clusters", "8"],
     r"layer '0\.weight' \(4 weights\).*choose k <= 4"),
    # kept ratio outside (0, 1]
    (["--method", "prune", "--ratio", "1.5"], r"--keep 1\.5 is outside \(0, 1\]"),
    (["--method", "prune", "--ratio", "-0.2"], "is outside"),
    (["--method", "prune", "--ratio", "nan"], "is outside"),
    (["--method", "prune+quantize", "--ratio", "0", "--bits", "2"], "is outside"),
    (["--method", "prune", "--ratio", "0.5", "--structured", "--scope", "global"], None),
])
def test_cli_errors_are_one_line(net, tmp_path, capsys, argv, message):
    code, out = cli(argv, tmp_path, capsys)
    if message is None:  # a valid control case next to the invalid ones
        assert code == 0 and out.err == ""
        return
    assert code == 2 and out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rdcompress compress: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "x.rdz").exists()


def test_cli_importance_of_another_model(net, tmp_path, capsys):
    from rdcompress.importance import Importance

    torch.manual_seed(5)
    other = nn.Sequential(nn.Linear(8, 3), nn.ReLU(), nn.Linear(3, 2))  # another architecture
    fake = fake_importance(other)
    Importance("fisher", fake.quadratic, None, None, 1, fake.weights_sha256, {}).save(
        tmp_path / "other.safetensors")
    code, out = cli(["--method", "quantize", "--clusters", "4", "--importance",
                     str(tmp_path / "other.safetensors")], tmp_path, capsys)
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and "another architecture" in lines[0]
    # Same architecture, other weights: the hash check names the mismatch.
    same = tiny_net(seed=7)
    fake = fake_importance(same)
    Importance("fisher", fake.quadratic, None, None, 1, fake.weights_sha256, {}).save(
        tmp_path / "retrained.safetensors")
    code, out = cli(["--method", "prune", "--ratio", "0.5", "--importance",
                     str(tmp_path / "retrained.safetensors")], tmp_path, capsys)
    assert code == 2 and len(out.err.strip().splitlines()) == 1
    assert "rdcompress compress: error: " in out.err
    assert not (tmp_path / "x.rdz").exists()
