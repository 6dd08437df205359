"""Reading weights: safetensors or torch.save files, into zoo or user models, with clear errors.

Accepted checkpoint layouts: a plain state_dict; ``{'state_dict': ...}`` (also ``'model'``,
``'model_state_dict'``, ``'net'``); keys with a ``module.`` prefix (DataParallel). torch files are
read with ``weights_only=True``: no arbitrary code runs while loading.

Trained models are saved as ``NAME.safetensors`` plus a sidecar ``NAME.json`` that records the
model spec, dataset, preprocessing, accuracy and seed (see ``rdcompress.train``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from rdcompress.errors import CheckpointError, ModelError, NonFiniteError
from rdcompress.models.preprocessing import Preprocessing
from rdcompress.models.zoo import ZOO, build_from_spec

SIDECAR_FORMAT = "rdcompress-model"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
# Buffers that old checkpoints lack and whose value does not affect eval-mode outputs.
_BENIGN_MISSING = ("num_batches_tracked",)


def sidecar_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist (or is not a file)")
    if path.suffix == ".rdz":
        raise CheckpointError(f"{path} is a compressed .rdz model: use rdcompress.load(path), "
                              "or 'rdcompress decompress' to get safetensors")
    with open(path, "rb") as handle:
        head = handle.read(16)
    if not head:
        raise CheckpointError(f"checkpoint {str(path)!r} is empty")
    if path.suffix == ".safetensors" or head[8:9] == b"{":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(
                f"cannot read {str(path)!r} as safetensors ({error}); the file is truncated "
                "or not a safetensors file"
            ) from error
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign/corrupt files
        raise CheckpointError(
            f"cannot read {str(path)!r} as a torch checkpoint: {str(error).splitlines()[0]}. "
            "Expected a safetensors file or a torch.save'd state_dict (weights only)."
        ) from error
    return _unwrap_state(obj, path)


def _unwrap_state(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in _WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{str(path)!r} holds {type(obj).__name__}, not a state_dict")
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise CheckpointError(f"{str(path)!r} holds no tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def check_finite(named_tensors: dict[str, torch.Tensor], where: str) -> None:
    for name, tensor in named_tensors.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise NonFiniteError(f"{where}: tensor {name!r} has {bad} NaN/inf values; "
                                 "the checkpoint is damaged or the training diverged")


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], source: str = "") -> nn.Module:
    """Load ``state`` into ``module`` strictly, with a message that lists what does not fit."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith(_BENIGN_MISSING)]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected if k in state and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[:3]})")
        if mismatched:
            parts.append(f"shape mismatch {len(mismatched)} (e.g. {mismatched[:2]})")
        raise CheckpointError(
            f"weights {source or ''} do not fit the {type(module).__name__} architecture: "
            + "; ".join(parts) + ". Is --arch/--model the architecture these weights came from?"
        )
    check_finite(state, f"weights {source}".strip())
    merged = {k: state.get(k, v) for k, v in expected.items()}
    module.load_state_dict(merged, strict=True)
    return module


@dataclass
class LoadedModel:
    """A model ready to evaluate: module (eval mode), how to rebuild it, and its input pipeline."""

    module: nn.Module
    spec: dict[str, Any] | None  # model spec (see rdcompress.models.zoo), None if unknown
    preprocessing: Preprocessing
    dataset: str | None  # default dataset name
    source: str  # where the weights came from
    metadata: dict[str, Any] = field(default_factory=dict)  # sidecar contents, if any


def _spec_for(name: str) -> dict[str, Any]:
    return {"factory": name, "kwargs": {}} if ":" in name else {"zoo": name, "kwargs": {}}


def load_model(source: str | Path, weights: str | Path | None = None,
               arch: str | None = None) -> LoadedModel:
    """Resolve a model the way the CLI's MODEL argument does.

    - ``runs/x.safetensors`` with a sidecar ``runs/x.json`` (from ``rdcompress train``);
    - a checkpoint path plus ``arch`` (a zoo name or ``package.module:factory``);
    - a zoo name or ``package.module:factory`` plus ``weights`` (or random init if None);
    - a ``.rdz`` file (a compressed model, via ``rdcompress.load``).
    """
    source_str = str(source)
    path = Path(source_str)
    if path.suffix == ".rdz":
        return _load_rdz(path)
    if path.suffix in {".safetensors", ".th", ".pth", ".pt", ".bin"} or path.is_file():
        if weights is not None:
            raise ModelError(f"MODEL {source_str!r} is already a weights file; drop --weights")
        sidecar = sidecar_path(path)
        metadata: dict[str, Any] = {}
        if arch is None and sidecar.is_file():
            metadata = _read_sidecar(sidecar)
            spec = metadata["spec"]
        elif arch is not None:
            spec = _spec_for(arch)
        else:
            raise ModelError(
                f"{source_str!r} has no sidecar {sidecar.name!r} saying which architecture it "
                "is; pass --arch NAME (a zoo name: " + ", ".join(ZOO) +
                ", or package.module:factory)"
            )
        module = build_from_spec(spec)
        load_weights(module, load_state(path), source_str)
        return _finish(module, spec, path.as_posix(), metadata)
    if arch is not None:
        raise ModelError(f"MODEL {source_str!r} is a name, not a file; --arch is for files")
    spec = _spec_for(source_str)
    module = build_from_spec(spec)
    if weights is not None:
        load_weights(module, load_state(weights), str(weights))
    return _finish(module, spec, str(weights) if weights else "random-init", {})


def _finish(module: nn.Module, spec: dict[str, Any], source: str,
            metadata: dict[str, Any]) -> LoadedModel:
    module.eval()
    entry = ZOO.get(spec.get("zoo", "")) if spec else None
    if metadata.get("preprocessing") is not None:
        preprocessing = Preprocessing.from_dict(metadata["preprocessing"])
    else:
        preprocessing = entry.preprocessing if entry else Preprocessing()
    dataset = metadata.get("dataset") or (entry.dataset if entry else None)
    return LoadedModel(module, spec, preprocessing, dataset, source, metadata)


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"sidecar {str(path)!r} is not valid JSON: {error}") from error
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT or "spec" not in data:
        raise CheckpointError(f"{str(path)!r} is not an rdcompress model sidecar "
                              f"(expected format {SIDECAR_FORMAT!r} with a 'spec')")
    return data


def _load_rdz(path: Path) -> LoadedModel:
    from rdcompress.compress import load as load_rdz  # the compress layer sits above models

    module, manifest = load_rdz(path, return_manifest=True)
    spec = manifest.get("model")
    metadata = dict(manifest.get("model_metadata") or {})
    return _finish(module, spec or {}, path.as_posix(), metadata)


def parameter_count(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
