"""``load_compressed(path)``: a model whose layers hold the ``.rdz`` file's compressed form.

Where ``rdcompress.compress.load`` decodes every tensor into a dense fp32 model, this keeps
what the file stores: quantized weights as codebook + packed indices, pruned weights as kept
values (or kept indices) + positions, low-rank weights as factors. Outputs equal the dense
load's (the decoded weights are bit for bit the same; factorized layers compute x·Bᵀ·Aᵀ, so
they differ from x·(AB)ᵀ by float rounding only).

Steps: the architecture is built on the meta device (nothing allocated) from the manifest's
model spec (or a deep copy of ``model``); its state_dict is checked against the file's
entries; every Linear/Conv2d with a compressed parameter is replaced by a compressed layer
(``modules.LAYERS``, ``modules.FACTORIZED``); everything else gets its decoded tensors.
Documented fallback: a compressed parameter of a layer type without a compressed counterpart
(e.g. Conv1d, Embedding, a normalization scale) is decoded densely, with a warning naming it.
"""

from __future__ import annotations

import copy
import os
import warnings
from typing import Any

import torch
from torch import nn

from rdcompress.codec import RawTensor, read_rdz_tensors
from rdcompress.codec.tensors import to_torch
from rdcompress.compress.api import check_state_fits
from rdcompress.compress.compose import FLOAT_DTYPES, LOWRANK, check_composites
from rdcompress.deploy.modules import FACTORIZED, LAYERS, can_factorize
from rdcompress.deploy.sources import (
    Dense,
    WeightSource,
    composed_source,
    source_from_entry,
)
from rdcompress.errors import ModelError

# a codec dtype name -> torch dtype (uint16/32/64 where this torch has them)
_ENTRY_DTYPES = {**FLOAT_DTYPES, "int64": torch.int64, "int32": torch.int32,
                 "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
                 "bool": torch.bool,
                 **{name: getattr(torch, name) for name in ("uint16", "uint32", "uint64")
                    if hasattr(torch, name)}}


def load_compressed(path: str | os.PathLike[str], *, model: nn.Module | None = None,
                    trust_code: bool = False, cache: bool = False,
                    return_manifest: bool = False) -> Any:
    """The model of a ``.rdz`` file with its compressed layers kept compressed (eval mode).

    Args:
        model: an instance of the architecture (a deep copy is used; ``model`` is untouched);
            default: the manifest's model spec (a ``pkg.mod:factory`` spec only with
            ``trust_code=True``, as ``rdcompress.compress.load``).
        cache: keep each decoded weight after the first forward (faster, but the memory of the
            dense weights comes back); default: decode on every forward.
        return_manifest: return (module, the file's manifest), from the same read.
    """
    manifest, entries = read_rdz_tensors(path)
    by_name = {entry.name: entry for entry in entries}
    composites = check_composites(manifest, {e.name: _meta(e) for e in entries})
    module = _architecture(path, manifest, model, trust_code)
    check_state_fits(path, module.state_dict(), _file_state(by_name, composites))

    holders = {name: source_from_entry(entry) for name, entry in by_name.items()
               if not isinstance(entry, RawTensor)}

    def holder(name: str, cached: bool = cache) -> WeightSource:
        source = _holder(name, holders, composites, by_name)
        source.cache = cached and not isinstance(source, Dense)
        return source

    composite_parts = {part for recipe in composites.values() for part in recipe["parts"]}
    compressed = [n for n in holders if n not in composite_parts] + list(composites)
    owners = dict(module.named_modules())
    replacements: dict[str, nn.Module] = {}
    factorized: dict[str, nn.Module] = {}
    fallback: list[str] = []
    for owner_name in sorted({_owner(n)[0] for n in compressed}):
        owner = owners[owner_name]
        names = sorted(n for n in compressed if _owner(n)[0] == owner_name)
        attrs = {_owner(n)[1] for n in names}
        lowrank = [n for n in names if n in composites and composites[n]["op"] == LOWRANK]
        if type(owner) not in LAYERS or not attrs <= {"weight", "bias"}:
            fallback.extend(names)
        elif not lowrank:
            replacements[owner_name] = owner
        elif lowrank == [_join(owner_name, "weight")] and can_factorize(owner):
            factorized[owner_name] = owner
        else:  # a low-rank grouped conv, or a low-rank bias: composed densely
            replacements[owner_name] = owner
    if fallback:
        warnings.warn(f"{len(fallback)} compressed parameters belong to layers without a "
                      f"compressed counterpart and are held dense: {fallback[:5]} (compressed "
                      f"layer types: {[t.__name__ for t in LAYERS]})", stacklevel=2)

    swapped = set(replacements) | set(factorized)
    dense_state = {name: holder(name, False)() for name in fallback}
    dense_state.update({
        name: to_torch(entry.array, entry.dtype or entry.array.dtype.name)
        for name, entry in by_name.items()
        if isinstance(entry, RawTensor) and name not in composite_parts
        and _owner(name)[0] not in swapped})
    module.load_state_dict(dense_state, strict=False, assign=True)
    for owner_name, owner in replacements.items():
        sources = {attr: holder(_join(owner_name, attr)) for attr in ("weight", "bias")
                   if getattr(owner, attr, None) is not None}
        _set_module(module, owner_name, LAYERS[type(owner)](owner, sources))
    for owner_name, owner in factorized.items():
        recipe = composites[_join(owner_name, "weight")]
        A, B = (holder(part) for part in recipe["parts"])
        bias = holder(_join(owner_name, "bias")) if getattr(owner, "bias", None) is not None \
            else None
        _set_module(module, owner_name, FACTORIZED[type(owner)](
            owner, A, B, bias, FLOAT_DTYPES[recipe["dtype"]]))
    _check_materialized(path, module)
    module.eval()
    return (module, manifest) if return_manifest else module


def _holder(name: str, holders: dict[str, WeightSource], composites: dict[str, dict],
            by_name: dict) -> WeightSource:
    """The (uncached) holder of state entry ``name``: its entry's, a composite's (parts
    decoded on every call), or a raw tensor's."""
    if name in composites:
        recipe = composites[name]
        return composed_source(recipe, [_holder(part, holders, composites, by_name)
                                        for part in recipe["parts"]])
    return holders[name] if name in holders else source_from_entry(by_name[name])


def _meta(entry) -> torch.Tensor:
    """A meta tensor with the entry's dtype and shape (for checks that read only those)."""
    dtype = entry.dtype if entry.dtype is not None else entry.array.dtype.name
    shape = entry.array.shape if isinstance(entry, RawTensor) else entry.shape
    return torch.empty(shape, dtype=_ENTRY_DTYPES.get(dtype, torch.uint8), device="meta")


def _file_state(by_name: dict, composites: dict[str, dict]) -> dict[str, torch.Tensor]:
    """{state name: meta tensor} of what the file fills: entries not parts, and composites."""
    parts = {part for recipe in composites.values() for part in recipe["parts"]}
    state = {name: _meta(entry) for name, entry in by_name.items() if name not in parts}
    for name, recipe in composites.items():
        state[name] = torch.empty(recipe["shape"], dtype=FLOAT_DTYPES[recipe["dtype"]],
                                  device="meta")
    return state


def _architecture(path, manifest: dict, model: nn.Module | None, trust_code: bool
                  ) -> nn.Module:
    if model is not None:
        return copy.deepcopy(model)
    from rdcompress.models import build_from_spec  # the models layer sits below

    spec = manifest.get("model")
    if not spec:
        raise ModelError(f"{os.fspath(path)!r} records no model spec, so its architecture is "
                         "unknown; pass model=<an instance of the architecture> to load it.")
    return build_from_spec(spec, trust_code=trust_code, device="meta",
                           source=f"the manifest of {os.fspath(path)!r}")


def _check_materialized(path, module: nn.Module) -> None:
    """ModelError if a tensor the file does not fill (a non-persistent buffer) is still meta."""
    empty = [name for name, tensor in (*module.named_parameters(), *module.named_buffers())
             if tensor.is_meta]
    if empty:
        raise ModelError(
            f"the architecture of {os.fspath(path)!r} holds tensors the file does not fill "
            f"({empty[:5]}, e.g. non-persistent buffers); pass model=<an instance of the "
            "architecture> so they come from it.")


def _owner(name: str) -> tuple[str, str]:
    owner, _, attr = name.rpartition(".")
    return owner, attr


def _join(owner: str, attr: str) -> str:
    return f"{owner}.{attr}" if owner else attr


def _set_module(root: nn.Module, dotted: str, replacement: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, replacement)
