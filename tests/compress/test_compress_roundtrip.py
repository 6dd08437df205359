"""save -> .rdz -> load: weights bit-exact equal to CompressedModel.state_dict()."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from compress_helpers import fake_importance, tiny_net  # noqa: E402

from rdcompress.compress import (
    PruneConfig,
    PruneQuantizeConfig,
    QuantizeConfig,
    compress,
    load,
)
from rdcompress.errors import ModelError


def assert_bit_exact(module, state):
    loaded = module.state_dict()
    assert list(loaded) == list(state)
    for name, value in state.items():
        assert loaded[name].dtype == value.dtype
        assert torch.equal(loaded[name].view(torch.uint8) if value.is_floating_point()
                           else loaded[name], value.view(torch.uint8)
                           if value.is_floating_point() else value), name


@pytest.mark.filterwarnings("ignore:the importance has a quartic term")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("config", [
    PruneConfig(0.3), QuantizeConfig(clusters=5, algorithm="optimal"),
    PruneQuantizeConfig(0.5, bits=2, algorithm="entropy", lam=1e-3),
], ids=lambda c: c.method)
def test_round_trip_bit_exact(tmp_path, dtype, config):
    net = tiny_net(dtype)
    compressed = compress(net, config, fake_importance(net, quartic=True))
    path = tmp_path / "m.rdz"
    summary = compressed.save(path)
    assert path.stat().st_size == summary.file_bytes
    module = load(path, model=net)
    assert not module.training
    assert_bit_exact(module, compressed.state_dict())
    assert module is not net and torch.equal(net[4].weight, tiny_net(dtype)[4].weight)


def test_round_trip_huffman_and_manifest(tmp_path):
    net = tiny_net()
    compressed = compress(net, QuantizeConfig(bits=3), coder="huffman")
    compressed.save(tmp_path / "h.rdz")
    module, manifest = load(tmp_path / "h.rdz", model=net, return_manifest=True)
    assert_bit_exact(module, compressed.state_dict())
    assert manifest["method"] == "quantize" and manifest["settings"]["coder"] == "huffman"


def test_load_without_spec_or_with_wrong_model(tmp_path):
    net = tiny_net()
    compress(net, PruneConfig(0.5)).save(tmp_path / "m.rdz")
    with pytest.raises(ModelError, match="model="):
        load(tmp_path / "m.rdz")
    with pytest.raises(ModelError, match="does not fit"):
        load(tmp_path / "m.rdz", model=torch.nn.Linear(2, 2))
