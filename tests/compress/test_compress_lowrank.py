"""LowRankConfig through compress(): exact .rdz round trips (dense and factorized), budgets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from rdcompress.codec import QuantizedTensor, RawTensor, read_rdz
from rdcompress.compress import compress, config_from_dict, load
from rdcompress.compress.lowrank import LowRankConfig
from rdcompress.errors import ConfigError, NonFiniteError
from rdcompress.lowrank import LowRankConv2d, LowRankLinear, collect_input_moments, truncated_svd

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from compress_helpers import fake_importance, tiny_net  # noqa: E402

LAYERS = ["0.weight", "4.weight"]  # conv (4, 1, 3, 3) and linear (10, 64)


def _moments(net):
    gen = torch.Generator().manual_seed(7)
    batches = [(torch.randn(8, 1, 6, 6, generator=gen), None) for _ in range(3)]
    return collect_input_moments(net, batches).layer_statistics()


def _compress(net, config, **kwargs):
    stats = _moments(net) if config.metric == "whiten" else None
    return compress(net, config, fake_importance(net), layers=LAYERS, layer_statistics=stats,
                    **kwargs)


@pytest.mark.parametrize("metric", ["svd", "fwsvd", "weighted", "whiten"])
@pytest.mark.parametrize("storage", ["float32", "float16", "quantized"])
def test_round_trip_is_bit_exact(tmp_path, metric, storage):
    net = tiny_net()
    config = LowRankConfig(metric=metric, rank=2, storage=storage,
                           bits=4 if storage == "quantized" else None, iters=3)
    compressed = _compress(net, config)
    path = tmp_path / "m.rdz"
    compressed.save(path)
    loaded = load(path, model=tiny_net(seed=3))
    for key, value in compressed.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert compressed.layers["4.weight"].rank == 2
    W = compressed.state_dict()["4.weight"].double()
    assert int(torch.linalg.matrix_rank(W, rtol=1e-5)) <= 2
    entries = {t.name: t for t in compressed.tensors}
    factor = entries["4.weight::A"]
    assert isinstance(factor, QuantizedTensor if storage == "quantized" else RawTensor)
    if storage == "float16":
        assert read_rdz(path).dtypes["4.weight::B"] == "float16"


def test_factorized_load_holds_the_decoded_factors(tmp_path):
    net = tiny_net()
    compressed = _compress(net, LowRankConfig(rank=2))
    compressed.save(tmp_path / "m.rdz")
    dense = load(tmp_path / "m.rdz", model=tiny_net())
    factorized = load(tmp_path / "m.rdz", model=tiny_net(), factorized=True)
    assert isinstance(factorized[0], LowRankConv2d) and isinstance(factorized[4], LowRankLinear)
    assert isinstance(dense[0], torch.nn.Conv2d)
    x = torch.randn(5, 1, 6, 6)
    torch.testing.assert_close(factorized(x), dense(x), rtol=1e-5, atol=1e-6)
    # the factors are the file's: A·B composed in float64 and rounded is the dense weight
    product = factorized[4].A.double() @ factorized[4].B.double()
    assert torch.equal(product.float(), dense[4].weight)


def test_svd_factors_are_the_truncated_svd():
    net = tiny_net()
    compressed = _compress(net, LowRankConfig(rank=3))
    A, B = truncated_svd(net[4].weight.detach().double(), 3)
    torch.testing.assert_close(compressed.state_dict()["4.weight"], (A @ B).float())
    singular = torch.linalg.svdvals(net[4].weight.detach().double())
    original = net[4].weight.detach().double()
    error = (compressed.state_dict()["4.weight"].double() - original).norm() ** 2
    assert float(error) == pytest.approx(float((singular[3:] ** 2).sum()), rel=1e-4)


def test_uniform_and_global_ratios_respect_the_budget():
    net = tiny_net()
    total = 4 * 9 + 10 * 64
    for allocation in ("uniform", "global"):
        compressed = _compress(net, LowRankConfig(ratio=0.3, allocation=allocation))
        stored = 0
        for name in LAYERS:
            rank, (out, d) = compressed.layers[name].rank, (
                (4, 9) if name == "0.weight" else (10, 64))
            stored += out * d if rank is None else rank * (out + d)
        assert stored <= 0.3 * total


def test_global_allocation_lowers_the_objective_against_uniform():
    net = tiny_net()
    uniform = _compress(net, LowRankConfig(ratio=0.4))
    global_ = _compress(net, LowRankConfig(ratio=0.4, allocation="global"))
    assert global_.distortion <= uniform.distortion * (1 + 1e-6)


def test_dense_layers_when_factors_would_cost_more(tmp_path):
    net = tiny_net()
    compressed = _compress(net, LowRankConfig(rank=3, storage="float16"))  # conv: r=3 > 2
    assert compressed.layers["0.weight"].rank is None
    compressed.save(tmp_path / "m.rdz")
    loaded = load(tmp_path / "m.rdz", model=tiny_net(), factorized=True)
    assert isinstance(loaded[0], torch.nn.Conv2d)  # kept dense, stored as float16
    assert torch.equal(loaded[0].weight, net[0].weight.half().float())
    raw = _compress(net, LowRankConfig(rank=3))
    assert torch.equal(raw.state_dict()["0.weight"], net[0].weight)
    assert any(isinstance(t, RawTensor) and t.name == "0.weight" for t in raw.tensors)


def test_quantized_factors_make_smaller_files(tmp_path):
    net = tiny_net()
    sizes = {}
    for storage, bits in (("float32", None), ("float16", None), ("quantized", 3)):
        compressed = _compress(net, LowRankConfig(rank=2, storage=storage, bits=bits))
        sizes[storage] = compressed.save(tmp_path / f"{storage}.rdz").file_bytes
    assert sizes["quantized"] < sizes["float16"] < sizes["float32"]


def test_config_round_trips_through_its_dict():
    config = LowRankConfig(metric="fwsvd", ratio=0.25, allocation="global", storage="quantized",
                           clusters=16)
    assert config_from_dict(config.to_dict()) == config
    assert config.to_dict()["k"] == 16


@pytest.mark.parametrize("kwargs, message", [
    ({"rank": 0}, "rank=0"),
    ({"ratio": 0.0}, r"\(0, 1\]"),
    ({"ratio": 1.5}, r"\(0, 1\]"),
    ({}, "exactly one of rank or ratio"),
    ({"rank": 2, "ratio": 0.5}, "exactly one of rank or ratio"),
    ({"rank": 2, "metric": "cur"}, "metric"),
    ({"rank": 2, "allocation": "global"}, "give ratio"),
    ({"rank": 2, "storage": "quantized"}, "clusters or bits"),
    ({"rank": 2, "bits": 4}, "quantized"),
])
def test_bad_configs(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        LowRankConfig(**kwargs)


def test_rank_above_the_matrix_is_a_config_error():
    with pytest.raises(ConfigError, match=r"min\(out, d\)=4"):
        _compress(tiny_net(), LowRankConfig(rank=5))


def test_missing_moment_says_how_to_collect_it():
    with pytest.raises(ConfigError, match="collect_input_moments"):
        compress(tiny_net(), LowRankConfig(metric="whiten", rank=2), layers=LAYERS)


def test_nan_weights_are_rejected():
    net = tiny_net()
    with torch.no_grad():
        net[4].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError):
        compress(net, LowRankConfig(rank=2), layers=LAYERS)
