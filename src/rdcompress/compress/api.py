"""The model-level API: ``compress(model, config, importance)`` and ``load(path)``.

>>> compressed = compress(model, QuantizeConfig(clusters=16), importance, model_spec=spec)
>>> summary = compressed.save("model.rdz")           # the file size is the rate
>>> net = load("model.rdz")                           # weights == compressed.state_dict(), bitwise

The original model is never modified: every tensor is read, detached and copied.
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rdcompress._io import state_dict_sha256
from rdcompress.codec import CODERS, RawTensor, RdzSummary, read_rdz, write_rdz
from rdcompress.compress._layers import (
    DTYPE_NAMES,
    LayerInput,
    LayerResult,
    LayerStats,
    fp32_bytes,
)
from rdcompress.compress.compose import LOWRANK, compose_state
from rdcompress.compress.context import Context, results_or_model
from rdcompress.compress.registry import MethodSpec, spec_of
from rdcompress.errors import ConfigError, ImportanceMismatchError, ModelError, NonFiniteError

DEFAULT_CODER = "ans"  # the coder of methods that name none (MethodSpec.coder)


@dataclass
class CompressedModel:
    """The result of ``compress``: codec entries for every state_dict entry, plus statistics."""

    tensors: list  # RawTensor | QuantizedTensor | PrunedTensor, in state_dict order
    manifest: dict  # goes into the .rdz header
    layers: dict[str, LayerStats]  # compressed layers only
    coder: str = "ans"
    _state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    report: dict | None = None  # what a model-level method reports (allocation: per layer)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A NEW dict of the compressed weights, exactly what ``load`` will produce."""
        return {name: tensor.clone() for name, tensor in self._state.items()}

    def save(self, path: str | os.PathLike[str]) -> RdzSummary:
        """Write the .rdz file atomically; returns the codec's byte accounting."""
        return write_rdz(path, self.tensors, self.manifest, coder=self.coder)

    @property
    def distortion(self) -> float:
        """Σ over compressed layers of Σ I (w − ŵ)² + H (w − ŵ)⁴."""
        return sum(stats.distortion for stats in self.layers.values())


def compress(
    model: nn.Module, config: Any, importance: Any = None, *, model_spec: dict | None = None,
    layers: list[str] | None = None, coder: str | None = None, model_metadata: dict | None = None,
    layer_statistics: dict[str, dict] | None = None, calibration: Any = None,
    batch_fn: Any = None, cache: dict | None = None,
) -> CompressedModel:
    """Compress ``model``'s layers by ``config`` (PruneConfig, QuantizeConfig, AllocateConfig...).

    Args:
        importance: an ``rdcompress.importance.Importance`` of this model (names, shapes and
            weight hash are checked), or None for the baseline objective (I = 1).
        model_spec: how to rebuild the architecture (``rdcompress.models.build_from_spec``);
            stored in the manifest so ``load(path)`` needs no model. None: ``load`` needs model=.
        layers: parameter names to compress; default every parameter with ndim >= 2 (the
            weights of Linear/Conv layers). Everything else in the state_dict is stored raw.
        coder: entropy coder of the file: "ans" (order-0 rANS), "huffman" or "ctx" (rANS with
            context models of neighbouring indices; format version 3). None: the method's own
            choice (``MethodSpec.coder``: "ctx" for allocation, which costs its menus in it),
            else "ans".
        model_metadata: extra JSON about the model (preprocessing, dataset) for the manifest.
        layer_statistics: per-parameter extras some methods need ({name: {key: tensor}}, e.g.
            input second moments for whitened low rank); handed to the handler on LayerInput.
        calibration: held-out (inputs, labels) batches for methods that measure the model's
            outputs (``AllocateConfig(max_kl=...)``); ``batch_fn`` reads other batch layouts.
        cache: a dict to pass to several calls that differ only in their target: methods that
            can reuse work keep it there (allocation: each layer's candidates, keyed by the
            weights, importances, settings and coder they were computed from).
    """
    spec = spec_of(config)
    coder = coder or spec.coder or DEFAULT_CODER
    check_coder(coder)
    _check_needs(spec, config, calibration, layer_statistics)
    params = dict(model.named_parameters())
    names = select_layers(params, layers, vectors=bool(getattr(config, "include_vectors", False)))
    check_finite_state(model)
    weights_sha256 = state_dict_sha256(params)
    inputs = _layer_inputs(params, names, importance if spec.uses_importance else None,
                           weights_sha256)
    for layer in inputs:
        layer.statistics = dict((layer_statistics or {}).get(layer.name, {}))
    objective = "baseline" if importance is None else str(importance.objective)

    def assemble_results(results: dict[str, LayerResult], used_config: Any,
                         objective: str = objective) -> CompressedModel:
        return assemble(model, results, names, config=used_config, objective=objective,
                        model_spec=model_spec, coder=coder, model_metadata=model_metadata)

    ctx = Context(model, inputs, objective, coder, assemble_results, calibration, batch_fn, cache)
    return results_or_model(spec.handler(ctx, config), ctx, config)


def _check_needs(spec: MethodSpec, config: Any, calibration: Any,
                 layer_statistics: dict | None) -> None:
    """ConfigError naming what ``config`` needs and the caller did not pass, before any work."""
    have = {"calibration", "input_moments"} if calibration is not None else set()
    if layer_statistics:
        have.add("input_moments")
    missing = spec.needs_of(config) - have
    if missing:
        what = ("calibration=<a DataLoader of held-out (inputs, labels) batches>"
                if "calibration" in missing else "calibration=<a DataLoader> or "
                "layer_statistics=<rdcompress.lowrank.collect_input_moments(...)."
                "layer_statistics()>")
        raise ConfigError(f"{type(config).__name__} with these settings needs "
                          f"{', '.join(sorted(missing))}: pass {what}")


def check_coder(coder: str) -> None:
    if coder not in CODERS:
        raise ConfigError(f"coder={coder!r} is unknown; use one of {CODERS}.")


def check_finite_state(model: nn.Module) -> None:
    """NonFiniteError naming the first state_dict entry with NaN/inf values."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise NonFiniteError(
                f"model entry {name!r} holds {int((~torch.isfinite(tensor)).sum())} NaN/inf "
                f"values; compress a model with finite weights."
            )


def assemble(
    model: nn.Module, results: dict[str, LayerResult], names: list[str], *, config: Any,
    objective: str, model_spec: dict | None = None, coder: str = "ans",
    model_metadata: dict | None = None,
) -> CompressedModel:
    """Codec entries + manifest for ``model`` with the compressed layers ``results``.

    Every state_dict entry not in ``results`` is stored raw (aliases of a compressed weight, as
    in tied weights, take its compressed value). ``config`` needs ``method`` and ``to_dict()``.
    Methods that do not go through a handler (e.g. randomized greedy compression, which needs
    the model and data) build their ``LayerResult``s and call this.
    """
    check_coder(coder)
    state = model.state_dict(keep_vars=False)
    params = dict(model.named_parameters())
    compressed_state: dict[str, torch.Tensor] = {}
    tensors: list[Any] = []  # codec entries
    composites: dict[str, dict] = {}
    tied = {params[n].data_ptr(): n for n in names if params[n].numel()}  # shared weights
    for key, tensor in state.items():
        if key in results:
            result = results[key]
            compressed_state[key] = result.weight
            if result.parts is not None:
                tensors.extend(result.parts)
                composites[key] = result.recipe or {}
            else:
                tensors.append(result.entry)
            continue
        source = tied.get(tensor.data_ptr()) if tensor.numel() else None
        if source is not None and tensor.shape == params[source].shape:
            value = results[source].weight.clone()  # an alias of a compressed weight
        else:
            value = tensor.detach().to("cpu").clone()  # the codec takes torch tensors
        compressed_state[key] = value
        tensors.append(RawTensor(key, value))
    manifest = {
        "model": model_spec,
        "model_metadata": model_metadata,
        "method": config.method,
        "objective": objective,
        "settings": {**config.to_dict(), "layers": names, "coder": coder},
        "weights_sha256": state_dict_sha256(params),
        "original_bytes": fp32_bytes(state),
        "layers": [results[name].stats.to_dict() for name in names],
    }
    if composites:
        manifest["composites"] = composites
    return CompressedModel(
        tensors=tensors, manifest=manifest, layers={n: results[n].stats for n in names},
        coder=coder, _state=compressed_state,
    )


MATERIALIZE = ("dense", "factorized", "compressed")


def load(path: str | os.PathLike[str], model: nn.Module | None = None, *,
         return_manifest: bool = False, factorized: bool = False, trust_code: bool = False,
         materialize: str = "dense"):
    """A ready ``nn.Module`` (eval mode) with the weights of a .rdz file, bit for bit.

    The architecture comes from ``model`` (a deep copy is filled; ``model`` itself is
    untouched), or else from the manifest's model spec: a zoo name is built from the registry;
    a ``package.module:factory`` spec is imported and called only with ``trust_code=True``
    (loading a file never runs code its author chose unless you say so). With
    ``return_manifest`` returns (module, manifest). With ``factorized``, every Linear/Conv2d
    stored as low-rank factors becomes a ``LowRankLinear``/``LowRankConv2d`` holding the
    decoded factors (cast to the weight's dtype; exact for float32/float16 factors); other
    layers (grouped convs included) stay dense; ``materialize="factorized"`` says the same.
    ``materialize="compressed"`` keeps every compressed layer compressed in memory (palettes
    as uint4/uint8 indices + codebook, pruned layers as kept values + positions, low-rank
    factors; ``rdcompress.deploy.load_compressed``); its outputs equal the dense model's.
    """
    if materialize not in MATERIALIZE:
        raise ConfigError(f"materialize={materialize!r}; use one of {MATERIALIZE}.")
    if materialize == "compressed":
        from rdcompress.deploy import load_compressed  # deploy builds on this package

        return load_compressed(path, model=model, trust_code=trust_code,
                               return_manifest=return_manifest)
    factorized = factorized or materialize == "factorized"
    contents = read_rdz(path)
    manifest = contents.manifest
    state = compose_state(manifest, contents.to_torch())
    if model is None:
        module = _module_from_manifest(path, manifest, state, trust_code)
    else:
        module = copy.deepcopy(model)
    check_state_fits(path, module.state_dict(), state)
    module.load_state_dict(state, strict=True)
    if factorized:
        module = _factorized(module, manifest, contents.to_torch())
    module.eval()
    return (module, manifest) if return_manifest else module


def _module_from_manifest(path: str | os.PathLike[str], manifest: dict,
                          state: dict[str, torch.Tensor], trust_code: bool) -> nn.Module:
    """The manifest's architecture; a zoo spec is checked against ``state`` on the meta device
    first, so that its kwargs cannot make us allocate what the file's tensors do not fill."""
    from rdcompress.models import build_from_spec, is_zoo_spec  # the models layer sits below

    spec = manifest.get("model")
    if not spec:
        raise ModelError(
            f"{os.fspath(path)!r} records no model spec, so its architecture is unknown; "
            "pass model=<an instance of the architecture> to load it."
        )
    source = f"the manifest of {os.fspath(path)!r}"
    if is_zoo_spec(spec):
        check_state_fits(path, build_from_spec(spec, device="meta", source=source).state_dict(),
                          state)
    return build_from_spec(spec, trust_code=trust_code, source=source)


def check_state_fits(path: str | os.PathLike[str], expected: dict[str, torch.Tensor],
                      state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelError(
            f"{os.fspath(path)!r} does not fit the architecture: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}; load it with the model it was compressed from."
        )
    for name, tensor in state.items():
        want = expected[name]
        if tensor.dtype != want.dtype or tensor.shape != want.shape:
            raise ModelError(
                f"{os.fspath(path)!r} does not fit the architecture: {name!r} in the file is "
                f"{tensor.dtype} {tuple(tensor.shape)} but the model expects {want.dtype} "
                f"{tuple(want.shape)}; load it with the model it was compressed from."
            )


def _factorized(module: nn.Module, manifest: dict, parts: dict[str, torch.Tensor]) -> nn.Module:
    """``module`` with its low-rank composites as factorized modules (a new module)."""
    from rdcompress.lowrank.modules import can_factorize, factorize_modules

    modules = dict(module.named_modules())
    factors = {}
    for name, recipe in (manifest.get("composites") or {}).items():
        owner = modules.get(name.removesuffix(".weight")) if name.endswith(".weight") else None
        if recipe.get("op") == LOWRANK and owner is not None and can_factorize(owner):
            factors[name] = (parts[recipe["parts"][0]], parts[recipe["parts"][1]])
    return factorize_modules(module, factors) if factors else module


def select_layers(params: dict[str, nn.Parameter], layers: list[str] | None,
                  vectors: bool = False) -> list[str]:
    """``layers`` checked, or by default every float parameter with ndim >= 2 (>= 1 with
    ``vectors``: biases and normalization scales too)."""
    if layers is None:
        names = [n for n, p in params.items()
                 if p.ndim >= (1 if vectors else 2) and p.dtype in DTYPE_NAMES]
        if not names:
            raise ConfigError("the model has no parameter with ndim >= 2 to compress; pass "
                              "layers=[names] explicitly.")
        return names
    names = list(layers)
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ConfigError(f"layers {unknown[:5]} are not parameters of the model; choose from "
                          f"{list(params)[:10]}.")
    for name in names:
        if params[name].dtype not in DTYPE_NAMES:
            raise ConfigError(f"layer {name!r} has dtype {params[name].dtype}; only float "
                              "parameters can be compressed.")
    if len(set(names)) != len(names):
        raise ConfigError(f"layers lists a name twice: {names}.")
    return names


def _layer_inputs(params: dict[str, nn.Parameter], names: list[str], importance: Any,
                  weights_sha256: str) -> list[LayerInput]:
    if importance is not None and importance.weights_sha256 != weights_sha256:
        raise ImportanceMismatchError(
            f"the importance was computed for weights with hash {importance.weights_sha256[:12]}"
            f"..., but this model's weights hash to {weights_sha256[:12]}...; recompute it for "
            "these weights (rdcompress importance) or pass the model it was made from."
        )
    inputs, clamped = [], []
    for name in names:
        weight = params[name].detach().to("cpu").clone()
        I = torch.ones_like(weight, dtype=torch.float64)
        H = None
        if importance is not None:
            I = _importance_tensor(importance.quadratic, name, weight, "quadratic")
            if importance.quartic is not None:
                H = _importance_tensor(importance.quartic, name, weight, "quartic") / 4
            if (I < 0).any() or (H is not None and (H < 0).any()):
                clamped.append(name)
                I, H = I.clamp_min(0), None if H is None else H.clamp_min(0)
        inputs.append(LayerInput(name, weight, I, H))
    if clamped:
        warnings.warn(
            f"negative importances (a diagonal Hessian estimate?) were clamped to 0 in "
            f"{len(clamped)} layers, e.g. {clamped[0]!r}; a regularizer mu > 0 avoids this.",
            stacklevel=3,
        )
    return inputs


def _importance_tensor(table: dict, name: str, weight: torch.Tensor, kind: str) -> torch.Tensor:
    if name not in table:
        raise ImportanceMismatchError(
            f"the importance has no {kind} entry for layer {name!r}; it was computed for "
            f"another model or without this parameter."
        )
    value = table[name].detach().to("cpu", torch.float64)
    if value.shape != weight.shape:
        raise ImportanceMismatchError(
            f"{kind} importance of {name!r} has shape {tuple(value.shape)}, the weight "
            f"{tuple(weight.shape)}; recompute the importance for this model."
        )
    if not torch.isfinite(value).all():
        raise NonFiniteError(f"{kind} importance of {name!r} holds NaN/inf values.")
    return value
