"""compress(): the math of each method on tiny models, validation, and the untouched original."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from compress_helpers import fake_importance, tiny_net  # noqa: E402

from rdcompress.codec import PrunedTensor, QuantizedTensor, RawTensor
from rdcompress.compress import (
    PruneConfig,
    PruneQuantizeConfig,
    QuantizeConfig,
    compress,
    config_from_dict,
    load,
)
from rdcompress.errors import ConfigError, ImportanceMismatchError, NonFiniteError
from rdcompress.pruning import kept_count

LAYERS = ("0.weight", "4.weight")
CONFIGS = [
    PruneConfig(0.3), PruneConfig(0.3, scope="global"), PruneConfig(0.5, structured=True),
    QuantizeConfig(clusters=4), QuantizeConfig(bits=3, algorithm="optimal"),
    QuantizeConfig(clusters=6, algorithm="quartic"),
    QuantizeConfig(clusters=8, algorithm="entropy", lam=1e-3),
    PruneQuantizeConfig(0.5, clusters=4), PruneQuantizeConfig(0.4, bits=2, scope="global"),
]


def objective(w, w_hat, I, H=None):
    d2 = (w.detach().double() - w_hat.double()) ** 2
    return float((I.double() * d2).sum() + (0 if H is None else (H.double() * d2 * d2).sum()))


@pytest.mark.filterwarnings("ignore:the importance has a quartic term")
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: str(c.to_dict()))
def test_every_method_keeps_model_and_reports_true_distortion(config):
    net = tiny_net()
    original = copy.deepcopy(net.state_dict())
    importance = fake_importance(net, quartic=True)
    compressed = compress(net, config, importance)
    for name, value in net.state_dict().items():  # the original is untouched
        assert torch.equal(value, original[name])
    state = compressed.state_dict()
    assert list(state) == list(original) and [t.name for t in compressed.tensors] == list(state)
    assert state["0.weight"] is not compressed.state_dict()["0.weight"]  # a new dict each call
    for name, value in state.items():
        assert value.dtype == original[name].dtype and value.shape == original[name].shape
        if name not in LAYERS:
            assert torch.equal(value, original[name])
    for name in LAYERS:
        stats = compressed.layers[name]
        H = importance.quartic[name] / 4
        expected = objective(original[name], state[name], importance.quadratic[name], H)
        assert stats.distortion == pytest.approx(expected, rel=1e-9)
        assert stats.kept == int((state[name] != 0).sum()) or config.method == "quantize"
        if config.method != "prune":
            assert torch.unique(state[name][state[name] != 0]).numel() <= config.k


def test_prune_keeps_largest_scores_exactly():
    net = tiny_net()
    importance = fake_importance(net)
    state = compress(net, PruneConfig(0.25), importance).state_dict()
    w, I = net[4].weight.detach(), importance.quadratic["4.weight"]
    kept = state["4.weight"] != 0
    assert int(kept.sum()) == kept_count(w.numel(), 0.25)
    assert torch.equal(state["4.weight"][kept], w[kept])  # kept values stored exactly
    score = I * w.double() ** 2
    assert score[kept].min() >= score[~kept].max()


def test_quantize_is_optimal_for_the_given_importance():
    net = tiny_net()
    importance = fake_importance(net)
    importance.quadratic["4.weight"][0, 0] = 1e6  # one weight that must be kept almost exactly
    state = compress(net, QuantizeConfig(clusters=4, algorithm="optimal"), importance).state_dict()
    assert state["4.weight"][0, 0] == pytest.approx(float(net[4].weight.detach()[0, 0]), abs=1e-6)
    baseline = compress(net, QuantizeConfig(clusters=4, algorithm="optimal")).state_dict()
    I = importance.quadratic["4.weight"]
    w = net[4].weight
    assert objective(w, state["4.weight"], I) <= objective(w, baseline["4.weight"], I)


def test_codec_entries():
    net = tiny_net()
    kinds = {type(t) for t in compress(net, PruneConfig(0.5)).tensors}
    assert kinds == {PrunedTensor, RawTensor}
    entries = {t.name: t for t in compress(net, PruneQuantizeConfig(0.5, clusters=3)).tensors}
    assert isinstance(entries["4.weight"], QuantizedTensor)
    assert entries["4.weight"].mask.sum() == kept_count(640, 0.5)
    assert isinstance(entries["1.running_var"], RawTensor)


def test_manifest_and_settings_round_trip():
    net = tiny_net()
    config = PruneQuantizeConfig(0.5, bits=2, algorithm="optimal")
    compressed = compress(net, config, model_spec={"zoo": "x", "kwargs": {}}, coder="huffman")
    manifest = compressed.manifest
    assert manifest["method"] == "prune+quantize" and manifest["objective"] == "baseline"
    assert manifest["settings"]["layers"] == list(LAYERS)
    assert manifest["original_bytes"] == sum(
        t.numel() * (4 if t.is_floating_point() else t.element_size())
        for t in net.state_dict().values())
    assert config_from_dict(manifest["settings"]) == config


def test_explicit_layers_and_tied_weights():
    net = tiny_net()
    state = compress(net, QuantizeConfig(clusters=2), layers=["4.weight"]).state_dict()
    assert torch.equal(state["0.weight"], net[0].weight)
    assert torch.unique(state["4.weight"]).numel() <= 2
    tied = torch.nn.Sequential(torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 3))
    tied[1].weight = tied[0].weight
    state = compress(tied, QuantizeConfig(clusters=2)).state_dict()
    assert torch.equal(state["0.weight"], state["1.weight"])


def test_errors():
    net = tiny_net()
    with pytest.raises(ConfigError, match=r"0\.weight.*36 weights.*k=1000.*36 distinct"):
        compress(net, QuantizeConfig(clusters=1000))
    with pytest.raises(ConfigError, match="outside"):
        PruneConfig(0.0)
    with pytest.raises(ConfigError, match="outside"):
        PruneQuantizeConfig(1.2, clusters=4)
    with pytest.raises(ConfigError, match="exactly one"):
        QuantizeConfig(clusters=4, bits=2)
    with pytest.raises(ConfigError, match="entropy"):
        QuantizeConfig(clusters=4, lam=0.1)
    with pytest.raises(ConfigError, match="coder"):
        compress(net, PruneConfig(0.5), coder="zip")
    with pytest.raises(ConfigError, match="not parameters"):
        compress(net, PruneConfig(0.5), layers=["nope"])
    with pytest.raises(ConfigError, match="no registered method"):
        compress(net, object())
    broken = tiny_net()
    with torch.no_grad():
        broken[4].weight[1, 2] = float("nan")
    with pytest.raises(NonFiniteError, match=r"4\.weight"):
        compress(broken, PruneConfig(0.5))


def test_importance_of_another_model():
    net, other = tiny_net(seed=0), tiny_net(seed=1)
    with pytest.raises(ImportanceMismatchError, match="hash"):
        compress(net, PruneConfig(0.5), fake_importance(other))
    importance = fake_importance(net)
    del importance.quadratic["4.weight"]
    with pytest.raises(ImportanceMismatchError, match="4.weight"):
        compress(net, PruneConfig(0.5), importance)
    importance = fake_importance(net)
    importance.quadratic["4.weight"] = torch.rand(3, 3)
    with pytest.raises(ImportanceMismatchError, match="shape"):
        compress(net, PruneConfig(0.5), importance)


def test_negative_importance_is_clamped_with_a_warning():
    net = tiny_net()
    importance = fake_importance(net, objective="hessian")
    importance.quadratic["4.weight"] -= 0.5
    with pytest.warns(UserWarning, match="clamped"):
        compressed = compress(net, QuantizeConfig(clusters=4), importance)
    assert compressed.layers["4.weight"].distortion >= 0


def test_load_materializes_dense_factorized_or_compressed(tmp_path):
    from torch import nn

    from rdcompress.compress import LowRankConfig

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(5, 12)
    for config in (QuantizeConfig(clusters=4), LowRankConfig(rank=3)):
        path = tmp_path / f"{config.method}.rdz"
        compress(net, config).save(path)
        dense = load(path, model=net)
        for materialize in ("factorized", "compressed"):
            other, manifest = load(path, model=net, materialize=materialize,
                                   return_manifest=True)
            assert manifest["method"] == config.method
            torch.testing.assert_close(other(x), dense(x), rtol=0, atol=1e-6)
        assert type(load(path, model=net, materialize="compressed")[0]) is not nn.Linear
    with pytest.raises(ConfigError, match="materialize='sparse'"):
        load(path, model=net, materialize="sparse")
