"""load_compressed: compressed layers, outputs equal to compress.load's, memory that drops."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from deploy_helpers import CONFIGS, NETS, example_input, make_rdz, tiny_mlp  # noqa: E402

from rdcompress.compress import QuantizeConfig, compose_weight, compress, load  # noqa: E402
from rdcompress.deploy import (  # noqa: E402
    Composed,
    CompressedConv2d,
    CompressedLinear,
    Dense,
    FactorizedConv2d,
    FactorizedLinear,
    Palette,
    SparseValues,
    load_compressed,
    total_weight_bytes,
    weight_bytes,
)
from rdcompress.errors import ModelError  # noqa: E402

COMPRESSED_TYPES = (CompressedLinear, CompressedConv2d, FactorizedLinear, FactorizedConv2d)


def _decoded_weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """{dense weight name: decoded tensor} of every CompressedLinear/Conv2d."""
    weights = {}
    for name, layer in module.named_modules():
        if isinstance(layer, (CompressedLinear, CompressedConv2d)):
            weights[f"{name}.weight"] = layer.weight_source()
            if layer.bias_source is not None:
                weights[f"{name}.bias"] = layer.bias_source()
    return weights


@pytest.mark.parametrize("config_name", list(CONFIGS))
@pytest.mark.parametrize("net_name", list(NETS))
def test_outputs_match_dense_load(tmp_path, net_name, config_name):
    _, path = make_rdz(tmp_path, net_name, config_name)
    dense = load(path, model=NETS[net_name]())
    compressed = load_compressed(path, model=NETS[net_name]())
    x = example_input()
    with torch.no_grad():
        expected, got = dense(x), compressed(x)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-6
    assert not compressed.training
    replaced = [m for m in compressed.modules() if isinstance(m, COMPRESSED_TYPES)]
    assert replaced, "no layer was replaced by a compressed one"
    # every decoded weight is bit for bit the dense load's
    dense_state = dense.state_dict()
    for name, weight in _decoded_weights(compressed).items():
        assert torch.equal(weight, dense_state[name]), name


@pytest.mark.parametrize(("config_name", "layout", "bits"),
                         [("quantize-k16", "uint4", 4), ("quantize-k4", "uint2", 2),
                          ("quantize-k40", "uint8", 8), ("prune-quantize", "uint2", 2)])
def test_memory_drops_with_k(tmp_path, config_name, layout, bits):
    """A quantized layer holds its indices at ceil(log2 k) bits (1, 2, 4, 8) + its codebook:
    at k <= 16 at most 1/4 of its dense bytes."""
    net, path = make_rdz(tmp_path, "mlp", config_name)
    compressed = load_compressed(path, model=tiny_mlp())
    held = weight_bytes(compressed)
    numel = 24 * 36
    palette = compressed[1].weight_source
    assert isinstance(palette, Palette) and palette.layout == layout
    mask_bytes = 0 if palette.kept is None else palette.kept.nbytes
    assert held["1.weight_source"] == -(-palette.n_indices * bits // 8) + 4 * palette.k \
        + mask_bytes
    if bits <= 4:
        assert held["1.weight_source"] <= numel * 4 / 4
    assert total_weight_bytes(compressed) < total_weight_bytes(net) / 2


def test_cache_keeps_decoded_weight_and_counts_it(tmp_path):
    _, path = make_rdz(tmp_path, "mlp", "quantize-k16")
    lazy = load_compressed(path, model=tiny_mlp())
    cached = load_compressed(path, model=tiny_mlp(), cache=True)
    x = example_input()
    before = total_weight_bytes(cached)
    assert torch.equal(lazy(x), cached(x))
    assert cached[1].weight_source.cached is not None and lazy[1].weight_source.cached is None
    assert total_weight_bytes(cached) == before + (24 * 36 + 10 * 24) * 4
    assert total_weight_bytes(lazy) == before
    assert torch.equal(lazy(x), cached(x))  # the second call reads the cache


def test_layer_kinds_per_method(tmp_path):
    _, path = make_rdz(tmp_path, "conv", "prune")
    pruned = load_compressed(path, model=NETS["conv"]())
    assert isinstance(pruned.head.weight_source, SparseValues)
    assert isinstance(pruned.head.bias_source, Dense)
    assert isinstance(pruned.bn, nn.BatchNorm2d)  # raw layers stay
    _, path = make_rdz(tmp_path, "conv", "lowrank")
    lowrank = load_compressed(path, model=NETS["conv"]())
    assert isinstance(lowrank.stem, FactorizedConv2d) and isinstance(lowrank.head,
                                                                      FactorizedLinear)
    # a grouped conv's weight matrix mixes groups: composed densely, not factorized
    assert isinstance(lowrank.depthwise, CompressedConv2d)
    assert isinstance(lowrank.depthwise.weight_source, Composed)
    _, path = make_rdz(tmp_path, "conv", "lowrank-quantized")
    quantized_factors = load_compressed(path, model=NETS["conv"]())
    assert isinstance(quantized_factors.head.A, Palette)
    assert isinstance(quantized_factors.head.B, Palette)


def test_zoo_spec_builds_on_meta_and_matches(tmp_path):
    from rdcompress.models import build

    torch.manual_seed(0)
    net = build("digits-mlp")
    path = tmp_path / "digits.rdz"
    compress(net, QuantizeConfig(clusters=8), None,
             model_spec={"zoo": "digits-mlp", "kwargs": {}}).save(path)
    x = torch.randn(5, 64)
    compressed = load_compressed(path)
    assert torch.allclose(compressed(x), load(path)(x), rtol=0, atol=1e-6)
    assert not any(t.is_meta for t in compressed.state_dict().values())


def test_no_spec_and_no_model_is_a_clear_error(tmp_path):
    _, path = make_rdz(tmp_path, "mlp", "quantize-k4")
    with pytest.raises(ModelError, match="records no model spec"):
        load_compressed(path)


def test_wrong_architecture_is_a_clear_error(tmp_path):
    _, path = make_rdz(tmp_path, "mlp", "quantize-k4")
    with pytest.raises(ModelError, match="does not fit the architecture"):
        load_compressed(path, model=NETS["conv"]())


def test_unsupported_layer_type_is_decoded_densely_with_a_warning(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.Linear(12, 4)).eval()
    path = tmp_path / "conv1d.rdz"
    compress(net, QuantizeConfig(clusters=4), None).save(path)
    with pytest.warns(UserWarning, match=r"held dense: \['0.weight'\]"):
        compressed = load_compressed(path, model=net)
    assert isinstance(compressed[0], nn.Conv1d) and isinstance(compressed[2], CompressedLinear)
    x = torch.randn(3, 2, 6)
    assert torch.equal(compressed(x), load(path, model=net)(x))


def test_composed_matches_compose_weight():
    """Composed (sum / lowrank) against compose.compose_weight, bit for bit, float16 parts."""
    gen = torch.Generator().manual_seed(0)
    A, B = torch.randn(5, 2, generator=gen), torch.randn(2, 12, generator=gen).half()
    recipe = {"op": "lowrank", "parts": ["w::A", "w::B"], "shape": [5, 3, 2, 2],
              "dtype": "float32"}
    composed = Composed("lowrank", [Dense(A), Dense(B)], (5, 3, 2, 2), torch.float32)
    assert torch.equal(composed(), compose_weight("w", recipe, {"w::A": A, "w::B": B}))
    q, r = torch.randn(4, 6, generator=gen), torch.randn(4, 6, generator=gen).half()
    recipe = {"op": "sum", "parts": ["w::q", "w::r"], "shape": [4, 6], "dtype": "float32"}
    composed = Composed("sum", [Dense(q), Dense(r)], (4, 6), torch.float32)
    assert torch.equal(composed(), compose_weight("w", recipe, {"w::q": q, "w::r": r}))


def test_other_entry_kinds_are_palettized_from_their_distinct_values(tmp_path):
    """A dependent-quantization entry (no holder of its own): decoded by the codec and held
    as a palette of its distinct values, bit for bit."""
    from deploy_helpers import make_dq_rdz

    net, path = make_dq_rdz(tmp_path)
    compressed = load_compressed(path, model=net)
    source = compressed[1].weight_source
    assert isinstance(source, Palette)
    assert torch.equal(source(), load(path, model=net).state_dict()["1.weight"])
    x = example_input()
    assert torch.equal(compressed(x), load(path, model=net)(x))
