"""Composite recipes are cross-checked against the decoded entries before anything is composed
(compose.check_composites): recipe vs parts, names, dtypes and shapes."""

from __future__ import annotations

import re

import pytest
import torch

from rdcompress.compress.compose import compose_state, make_recipe
from rdcompress.errors import FormatError


def lowrank_state():
    tensors = {"fc.weight::A": torch.randn(4, 2), "fc.weight::B": torch.randn(2, 3).half(),
               "conv.weight::q": torch.randn(2, 3), "conv.weight::r": torch.randn(2, 3),
               "bias": torch.zeros(4)}
    manifest = {"composites": {
        "fc.weight": make_recipe("lowrank", "fc.weight", ["A", "B"], (4, 3), torch.float32),
        "conv.weight": make_recipe("sum", "conv.weight", ["q", "r"], (2, 3), torch.float32)}}
    return manifest, tensors


def test_valid_composites_compose():
    manifest, tensors = lowrank_state()
    state = compose_state(manifest, tensors)
    assert sorted(state) == ["bias", "conv.weight", "fc.weight"]
    expected = (tensors["fc.weight::A"].double() @ tensors["fc.weight::B"].double()).float()
    assert torch.equal(state["fc.weight"], expected)


def edit(change):
    manifest, tensors = lowrank_state()
    change(manifest["composites"], tensors)
    return manifest, tensors


FC = "composite 'fc.weight'"
CASES = [
    (lambda c, t: c["fc.weight"].update(dtype="float16"),
     f"{FC}: part 'fc.weight::A' is torch.float32, which does not widen exactly to the "
     f"recipe's float16; the file is corrupt."),
    (lambda c, t: t.update({"fc.weight::B": t["fc.weight::B"].bfloat16()}),
     None),  # bfloat16 -> float32 is exact: allowed
    (lambda c, t: c["conv.weight"].update(dtype="bfloat16"),
     "composite 'conv.weight': part 'conv.weight::q' is torch.float32, which does not widen "
     "exactly to the recipe's bfloat16; the file is corrupt."),
    (lambda c, t: c["fc.weight"].update(parts=["fc.weight::B", "fc.weight::A"]),
     "low-rank composite 'fc.weight': factors [(2, 3), (4, 2)] do not multiply to shape (4, 3) "
     "(expected A (4, r) and B (r, 3)); the file is corrupt."),
    (lambda c, t: c["fc.weight"].update(shape=[3, 4]),
     "low-rank composite 'fc.weight': factors [(4, 2), (2, 3)] do not multiply to shape (3, 4) "
     "(expected A (3, r) and B (r, 4)); the file is corrupt."),
    (lambda c, t: c["conv.weight"].update(shape=[3, 2]),
     "sum composite 'conv.weight': parts [(2, 3), (2, 3)] should all have shape (3, 2); the "
     "file is corrupt."),
    (lambda c, t: c["conv.weight"].update(parts=["fc.weight::A"]),
     "composite 'conv.weight': part 'fc.weight::A' is not named conv.weight::SUFFIX; the file "
     "is corrupt."),
    (lambda c, t: c.update({"fc2.weight": dict(c["fc.weight"])}),
     "composite 'fc2.weight': part 'fc.weight::A' is not named fc2.weight::SUFFIX; the file is "
     "corrupt."),
    (lambda c, t: c["fc.weight"].update(parts=["fc.weight::A", "fc.weight::A"]),
     f"{FC}: parts ['fc.weight::A', 'fc.weight::A'] should be distinct entry names; the file "
     f"is corrupt."),
    (lambda c, t: c["fc.weight"].update(parts=["fc.weight::A", "fc.weight::C"]),
     f"{FC} has a missing part: 'fc.weight::C' is not in the file; the file is corrupt."),
    (lambda c, t: c["fc.weight"].update(op="cube"),
     f"{FC} has op 'cube'; this version knows ('lowrank', 'sum'). Upgrade rdcompress to read it."),
    (lambda c, t: c["fc.weight"].update(shape=[4, -3]),
     f"{FC}: shape [4, -3] is not a list of at most 32 non-negative integers; the file is "
     f"corrupt."),
    (lambda c, t: c["fc.weight"].update(dtype="int8"),
     f"{FC}: dtype 'int8' is not one of ['float32', 'float16', 'bfloat16', 'float64']; the file "
     f"is corrupt."),
    (lambda c, t: c["fc.weight"].update(extra=1),
     f"{FC} has a malformed recipe: keys ['dtype', 'extra', 'op', 'parts', 'shape'], expected "
     f"exactly ['dtype', 'op', 'parts', 'shape']; the file is corrupt."),
    (lambda c, t: t.update({"fc.weight": torch.zeros(4, 3)}),
     f"{FC} is also stored as an entry; the file is corrupt."),
]


@pytest.mark.parametrize("change,message", CASES, ids=range(len(CASES)))
def test_recipe_cross_checks(change, message):
    manifest, tensors = edit(change)
    if message is None:
        compose_state(manifest, tensors)
        return
    with pytest.raises(FormatError, match=f"^{re.escape(message)}$"):
        compose_state(manifest, tensors)


def test_part_shared_by_two_composites():
    tensors = {"w::x::1": torch.ones(2)}
    recipe = {"op": "sum", "parts": ["w::x::1"], "shape": [2], "dtype": "float32"}
    manifest = {"composites": {"w": recipe, "w::x": dict(recipe)}}
    with pytest.raises(FormatError, match=re.escape(
            "composite 'w::x': part 'w::x::1' also belongs to composite 'w'; the file is "
            "corrupt.")):
        compose_state(manifest, tensors)


@pytest.mark.parametrize("composites", [[], "x", 3])
def test_composites_must_be_an_object(composites):
    with pytest.raises(FormatError, match="^the manifest's 'composites' is a "):
        compose_state({"composites": composites}, {})
