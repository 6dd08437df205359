"""Composite weights (compose.py): low-rank factors and sums stored as parts, rebuilt exactly."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch

from rdcompress.codec import PrunedTensor, RawTensor, read_rdz, write_rdz
from rdcompress.compress import assemble, compose_weight, load, make_recipe, part_name
from rdcompress.compress._layers import LayerInput, LayerResult, _stats
from rdcompress.compress.compose import compose_state
from rdcompress.errors import FormatError

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from compress_helpers import tiny_net  # noqa: E402


@dataclass
class _Config:
    rank: int
    method: ClassVar[str] = "test-composite"

    def to_dict(self) -> dict:
        return {"method": self.method, "rank": self.rank}


def _lowrank_result(name: str, weight: torch.Tensor, rank: int) -> LayerResult:
    matrix = weight.reshape(weight.shape[0], -1).double()
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    a = (u[:, :rank] * s[:rank]).float()  # (out, r)
    b = vh[:rank].float()  # (r, in)
    recipe = make_recipe("lowrank", name, ["A", "B"], tuple(weight.shape), weight.dtype)
    parts = [RawTensor(part_name(name, "A"), a), RawTensor(part_name(name, "B"), b)]
    dense = compose_weight(name, recipe, {part_name(name, "A"): a, part_name(name, "B"): b})
    layer = LayerInput(name, weight, torch.ones_like(weight, dtype=torch.float64), None)
    return LayerResult(None, dense, _stats(layer, dense, weight.numel(), None, None), parts,
                       recipe)


def test_lowrank_composite_round_trips_bit_for_bit(tmp_path):
    net = tiny_net()
    weight = net[4].weight.detach().clone()  # (10, 64)
    result = _lowrank_result("4.weight", weight, rank=3)
    singular = torch.linalg.svdvals(result.weight.double())
    assert singular[3] < 1e-6 * singular[0]  # rank 3, up to float32 rounding
    compressed = assemble(net, {"4.weight": result}, ["4.weight"], config=_Config(3),
                          objective="baseline")
    path = tmp_path / "m.rdz"
    compressed.save(path)
    contents = read_rdz(path)
    assert "4.weight" not in contents.tensors  # stored as parts only
    assert contents.manifest["composites"]["4.weight"]["op"] == "lowrank"
    loaded = load(path, model=tiny_net(seed=5))
    for key, value in compressed.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(loaded[4].weight, result.weight)
    assert torch.equal(net[4].weight, weight)  # the original is untouched


def test_conv_lowrank_reshapes_to_the_parameter_shape():
    weight = torch.randn(4, 1, 3, 3)
    result = _lowrank_result("0.weight", weight, rank=4)  # full rank: exact up to rounding
    assert result.weight.shape == weight.shape
    torch.testing.assert_close(result.weight, weight, rtol=1e-5, atol=1e-6)


def test_sum_composite_of_disjoint_pieces_is_exact(tmp_path):
    weight = torch.randn(5, 6)
    mask = torch.rand(5, 6) > 0.5
    pieces = {"a": torch.where(mask, weight, 0.0), "b": torch.where(~mask, weight, 0.0)}
    recipe = make_recipe("sum", "w", ["a", "b"], (5, 6), torch.float32)
    parts = {part_name("w", k): v for k, v in pieces.items()}
    assert torch.equal(compose_weight("w", recipe, parts), weight)
    entries = [PrunedTensor(part_name("w", "a"), (5, 6), "float32", mask.reshape(-1).numpy(),
                            weight[mask]),
               PrunedTensor(part_name("w", "b"), (5, 6), "float32", (~mask).reshape(-1).numpy(),
                            weight[~mask])]
    write_rdz(tmp_path / "s.rdz", entries, {"composites": {"w": recipe}})
    contents = read_rdz(tmp_path / "s.rdz")
    state = compose_state(contents.manifest, contents.to_torch())
    assert list(state) == ["w"] and torch.equal(state["w"], weight)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(op="cube"), "op 'cube'"),
    (lambda r: r["parts"].pop(), "do not multiply"),
    (lambda r: r.update(parts=["w::A", "w::missing"]), "missing part"),
    (lambda r: r.update(shape=[7, 7]), "do not multiply"),
    (lambda r: r.pop("dtype"), "malformed recipe"),
])
def test_malformed_recipes_are_format_errors(mutate, message):
    a, b = torch.randn(4, 2), torch.randn(2, 3)
    recipe = json.loads(json.dumps(make_recipe("lowrank", "w", ["A", "B"], (4, 3),
                                               torch.float32)))
    mutate(recipe)
    with pytest.raises(FormatError, match=message):
        compose_weight("w", recipe, {"w::A": a, "w::B": b})


def test_file_ratio_counts_a_composite_once_at_its_own_shape(tmp_path):
    net = tiny_net()
    weight = net[4].weight.detach().clone()  # (10, 64): 640 numbers, 2560 fp32 bytes
    compressed = assemble(net, {"4.weight": _lowrank_result("4.weight", weight, rank=2)},
                          ["4.weight"], config=_Config(2), objective="baseline")
    summary = compressed.save(tmp_path / "m.rdz")
    state = net.state_dict()
    assert summary.numel == sum(t.numel() for t in state.values())
    assert summary.original_bytes == compressed.manifest["original_bytes"]
    assert summary.layer_bytes("4.weight") == 4 * (10 * 2 + 2 * 64)  # the two fp32 factors
    from rdcompress.codec import inspect_rdz

    assert inspect_rdz(tmp_path / "m.rdz").original_bytes == summary.original_bytes
