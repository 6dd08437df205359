"""Composite weights: a compressed parameter stored as several codec entries plus a recipe.

Most methods store one codec entry per parameter. Some store parts:

- ``"lowrank"``: W ≈ A·B with A (out, r) and B (r, in·kh·kw), the parameter's shape restored
  by a reshape (Linear: (out, in); Conv2d: (out, in/groups, kh, kw));
- ``"sum"``: W = Σ parts, e.g. quantized positions + positions kept exactly (disjoint masks).

Parts are codec entries named ``f"{param}{SEPARATOR}{part}"``; the manifest's ``"composites"``
maps each composite parameter to its recipe ``{"op", "parts", "shape", "dtype"}``. The dense
weight is rebuilt in float64 and rounded once to the parameter's dtype, so the result does not
depend on the summation order of the machine's BLAS: ``compress`` and ``load`` compute it with
this same function and agree bit for bit.
"""

from __future__ import annotations

import torch

from rdcompress.errors import FormatError

SEPARATOR = "::"
LOWRANK, SUM = "lowrank", "sum"  # the ops of the format (docs/rdz-format.md)
OPS = (LOWRANK, SUM)
# the float dtypes of the format, by name (docs/rdz-format.md)
FLOAT_DTYPES = {"float32": torch.float32, "float16": torch.float16,
                "bfloat16": torch.bfloat16, "float64": torch.float64}


def part_name(name: str, part: str) -> str:
    """The codec entry name of part ``part`` of parameter ``name`` (e.g. ``fc.weight::A``)."""
    return f"{name}{SEPARATOR}{part}"


def make_recipe(op: str, name: str, parts: list[str], shape: tuple[int, ...],
                dtype: torch.dtype) -> dict:
    """A JSON recipe for the manifest. ``parts`` are part suffixes, in the op's order."""
    if op not in OPS:
        raise ValueError(f"op {op!r} is not one of {OPS}")
    dtype_name = next(key for key, value in FLOAT_DTYPES.items() if value == dtype)
    return {"op": op, "parts": [part_name(name, p) for p in parts], "shape": list(shape),
            "dtype": dtype_name}


# A part may be stored in a narrower float type than its parameter when the widening is exact
# (low-rank factors or dense layers kept in float16 for a float32 model).
_EXACT_WIDENINGS = {("float16", "float32"), ("float16", "float64"), ("bfloat16", "float32"),
                    ("bfloat16", "float64"), ("float32", "float64")}
_RECIPE_KEYS = {"op", "parts", "shape", "dtype"}
_MAX_NDIM = 32


def _dtype_name(dtype: torch.dtype) -> str | None:
    return next((key for key, value in FLOAT_DTYPES.items() if value == dtype), None)


def check_composites(manifest: dict, tensors: dict[str, torch.Tensor]) -> dict[str, dict]:
    """The manifest's recipes, each cross-checked against the decoded entries, or FormatError.

    Rules (docs/rdz-format.md): ``composites`` is an object; a composite's name is not also an
    entry; its recipe has exactly the keys op, parts, shape, dtype; op is known; parts are
    distinct entries named ``NAME::SUFFIX`` belonging to no other composite; shape is a list of
    non-negative integers and dtype a float dtype; every part is floating, of the recipe's
    dtype or one that widens to it exactly; "sum" parts have the recipe's shape; "lowrank"
    parts are A (shape[0], r) and B (r, numel / shape[0]).
    """
    composites = manifest.get("composites")
    if composites is None:
        return {}
    if not isinstance(composites, dict):
        raise FormatError(f"the manifest's 'composites' is a {type(composites).__name__}, not an "
                          f"object; the file is corrupt.")
    owner: dict[str, str] = {}
    for name, recipe in composites.items():
        _check_recipe(name, recipe, tensors, owner)
    return composites


def _check_recipe(name: str, recipe, tensors: dict[str, torch.Tensor],
                  owner: dict[str, str]) -> None:
    where = f"composite {name!r}"
    if name in tensors:
        raise FormatError(f"{where} is also stored as an entry; the file is corrupt.")
    if not isinstance(recipe, dict) or set(recipe) != _RECIPE_KEYS:
        keys = sorted(recipe) if isinstance(recipe, dict) else type(recipe).__name__
        raise FormatError(f"{where} has a malformed recipe: keys {keys}, expected exactly "
                          f"{sorted(_RECIPE_KEYS)}; the file is corrupt."[:400])
    if not isinstance(recipe["op"], str) or recipe["op"] not in OPS:
        raise FormatError(f"{where} has op {recipe['op']!r}; this version knows {OPS}. "
                          "Upgrade rdcompress to read it."[:400])
    parts, shape, dtype = recipe["parts"], recipe["shape"], recipe["dtype"]
    if not isinstance(shape, list) or len(shape) > _MAX_NDIM or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise FormatError(f"{where}: shape {shape!r} is not a list of at most {_MAX_NDIM} "
                          f"non-negative integers; the file is corrupt."[:400])
    if not isinstance(dtype, str) or dtype not in FLOAT_DTYPES:
        raise FormatError(f"{where}: dtype {dtype!r} is not one of {list(FLOAT_DTYPES)}; the file "
                          f"is corrupt."[:400])
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) for p in parts) \
            or len(set(parts)) != len(parts):
        raise FormatError(f"{where}: parts {parts!r} should be distinct entry names; the file "
                          f"is corrupt."[:400])
    for part in parts:
        if not part.startswith(name + SEPARATOR) or part == name + SEPARATOR:
            raise FormatError(f"{where}: part {part!r} is not named {name + SEPARATOR}SUFFIX; "
                              f"the file is corrupt."[:400])
        if part not in tensors:
            raise FormatError(f"{where} has a missing part: {part!r} is not in the file; "
                              f"the file is corrupt."[:400])
        if part in owner:
            raise FormatError(f"{where}: part {part!r} also belongs to composite "
                              f"{owner[part]!r}; the file is corrupt."[:400])
        owner[part] = name
        part_dtype = _dtype_name(tensors[part].dtype)
        if part_dtype != dtype and (part_dtype, dtype) not in _EXACT_WIDENINGS:
            raise FormatError(f"{where}: part {part!r} is {tensors[part].dtype}, which does not "
                              f"widen exactly to the recipe's {dtype}; the file is corrupt.")
    _check_part_shapes(where, recipe["op"], [tensors[p] for p in parts], tuple(shape))


def _check_part_shapes(where: str, op: str, parts: list[torch.Tensor],
                       shape: tuple[int, ...]) -> None:
    numel = 1
    for size in shape:
        numel *= size
    shapes = [tuple(p.shape) for p in parts]
    if op == SUM:
        if any(part_shape != shape for part_shape in shapes):
            raise FormatError(f"sum {where}: parts {shapes} should all have shape {shape}; the "
                              f"file is corrupt.")
        return
    out = shape[0] if shape else 0
    if len(parts) != 2 or any(len(s) != 2 for s in shapes) or not shape \
            or shapes[0][0] != out or shapes[0][1] != shapes[1][0] \
            or shapes[0][0] * shapes[1][1] != numel:
        raise FormatError(
            f"low-rank {where}: factors {shapes} do not multiply to shape {shape} (expected A "
            f"({out}, r) and B (r, {numel // out if out else '?'})); the file is corrupt."
        )


def compose_weight(name: str, recipe: dict, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """The dense parameter ``name`` from its decoded parts (float64 math, one final rounding).

    Raises FormatError when the recipe is malformed or a part is missing or of the wrong shape.
    """
    _check_recipe(name, recipe, {key: value for key, value in tensors.items() if key != name},
                  {})
    op, parts = recipe["op"], [tensors[p] for p in recipe["parts"]]
    shape, dtype = tuple(int(d) for d in recipe["shape"]), FLOAT_DTYPES[recipe["dtype"]]
    if op == LOWRANK:
        dense = parts[0].to(torch.float64) @ parts[1].to(torch.float64)
    else:
        dense = torch.zeros(shape, dtype=torch.float64).reshape(-1)
        for part in parts:
            dense += part.reshape(-1).to(torch.float64)
    return dense.reshape(shape).to(dtype)


def compose_state(manifest: dict, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace the parts of every composite in ``tensors`` by the dense parameter (new dict).

    Every recipe is cross-checked against the entries first (:func:`check_composites`).
    """
    composites = check_composites(manifest, tensors)
    state = dict(tensors)
    for name, recipe in composites.items():
        state[name] = compose_weight(name, recipe, tensors)
        for part in recipe["parts"]:
            state.pop(part, None)
    return state
