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
OPS = ("lowrank", "sum")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "float64": torch.float64}


def part_name(name: str, part: str) -> str:
    """The codec entry name of part ``part`` of parameter ``name`` (e.g. ``fc.weight::A``)."""
    return f"{name}{SEPARATOR}{part}"


def make_recipe(op: str, name: str, parts: list[str], shape: tuple[int, ...],
                dtype: torch.dtype) -> dict:
    """A JSON recipe for the manifest. ``parts`` are part suffixes, in the op's order."""
    if op not in OPS:
        raise ValueError(f"op {op!r} is not one of {OPS}")
    dtype_name = next(key for key, value in _DTYPES.items() if value == dtype)
    return {"op": op, "parts": [part_name(name, p) for p in parts], "shape": list(shape),
            "dtype": dtype_name}


def compose_weight(name: str, recipe: dict, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """The dense parameter ``name`` from its decoded parts (float64 math, one final rounding).

    Raises FormatError when the recipe is malformed or a part is missing or of the wrong shape.
    """
    try:
        op, parts = recipe["op"], [tensors[p] for p in recipe["parts"]]
        shape, dtype = tuple(int(d) for d in recipe["shape"]), _DTYPES[recipe["dtype"]]
    except (KeyError, TypeError, ValueError) as error:
        raise FormatError(f"composite {name!r} has a malformed recipe or a missing part "
                          f"({error!r}); the file is corrupt or from another tool.") from None
    numel = 1
    for size in shape:
        numel *= size
    if op == "lowrank":
        if len(parts) != 2 or parts[0].ndim != 2 or parts[1].ndim != 2 \
                or parts[0].shape[1] != parts[1].shape[0] \
                or parts[0].shape[0] * parts[1].shape[1] != numel:
            raise FormatError(
                f"low-rank composite {name!r}: factors {[tuple(p.shape) for p in parts]} do not "
                f"multiply to shape {shape}; the file is corrupt."
            )
        dense = parts[0].to(torch.float64) @ parts[1].to(torch.float64)
    elif op == "sum":
        if not parts or any(p.numel() != numel for p in parts):
            raise FormatError(f"sum composite {name!r}: parts {[tuple(p.shape) for p in parts]} "
                              f"do not all have {numel} elements; the file is corrupt.")
        dense = torch.zeros(numel, dtype=torch.float64)
        for part in parts:
            dense += part.reshape(-1).to(torch.float64)
    else:
        raise FormatError(f"composite {name!r} has op {op!r}; this version knows {OPS}. "
                          "Upgrade rdcompress to read it.")
    return dense.reshape(shape).to(dtype)


def compose_state(manifest: dict, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace the parts of every composite in ``tensors`` by the dense parameter (new dict)."""
    composites = manifest.get("composites") or {}
    if not isinstance(composites, dict):
        raise FormatError("the manifest's 'composites' is not an object; the file is corrupt.")
    state = dict(tensors)
    for name, recipe in composites.items():
        state[name] = compose_weight(name, recipe, tensors)
        for part in recipe["parts"]:
            state.pop(part, None)
    return state
