"""Reading weights: safetensors or torch.save files, into zoo or user models, with clear errors.

Accepted checkpoint layouts: a plain state_dict; ``{'state_dict': ...}`` (also ``'model'``,
``'model_state_dict'``, ``'net'``); keys with a ``module.`` prefix (DataParallel). torch files are
read with ``weights_only=True``: no arbitrary code runs while loading, and a file that needs more
(a pickled object, a foreign file) is refused with our own message, never with advice to load it
unsafely.

Architectures named by a file (a sidecar's or a manifest's model spec) are built from the zoo
registry only; a ``package.module:factory`` spec in a file runs only with ``trust_code=True``.

Trained models are saved as ``NAME.safetensors`` plus a sidecar ``NAME.json`` that records the
model spec, dataset, preprocessing, accuracy and seed (see ``rdcompress.train``).
"""

from __future__ import annotations

import json
import math
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from rdcompress.errors import CheckpointError, ModelError, NonFiniteError
from rdcompress.models.preprocessing import Preprocessing
from rdcompress.models.zoo import ZOO, build_from_spec, is_zoo_spec

SIDECAR_FORMAT = "rdcompress-model"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net")
# Buffers that old checkpoints lack and whose value does not affect eval-mode outputs.
_BENIGN_MISSING = ("num_batches_tracked",)
WEIGHT_SUFFIXES = (".safetensors", ".th", ".pth", ".pt", ".bin", ".ckpt")
# first bytes of files people hand over by mistake -> what they are
_MAGIC = ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"GIF8", "a GIF image"), (b"\x1f\x8b", "a gzip archive"), (b"%PDF", "a PDF document"),
          (b"RDZ", "a compressed .rdz model"), (b"\x93NUMPY", "a NumPy .npy array"))


def sidecar_path(weights_path: str | Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict on the CPU."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {str(path)!r} is a directory; give the weights file "
                              "itself (.safetensors, or a torch.save'd .pt/.pth/.th)")
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
        with warnings.catch_warnings():  # torch's pickle-protocol notes are not for our users
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign/corrupt files
        # torch's own message advises weights_only=False (arbitrary code): never pass it on
        raise CheckpointError(
            f"cannot read {str(path)!r} as weights: {_why_unreadable(error, head)}. rdcompress "
            "reads safetensors files and torch.save'd state_dicts of tensors only, and never "
            "loads pickled objects, which could run code; re-save the weights where the model "
            "is defined with safetensors.torch.save_file(model.state_dict(), "
            "'weights.safetensors')."
        ) from None
    return _unwrap_state(obj, path)


def _why_unreadable(error: Exception, head: bytes) -> str:
    """Our own words for why ``torch.load(weights_only=True)`` refused a file."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return f"it is {kind}, not a checkpoint"
    text = str(error)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if found:
        return (f"it is a pickle that refers to the Python object {found.group(1)!r}, which a "
                "file of weights never needs")
    if isinstance(error, pickle.UnpicklingError):
        return "it is not a torch checkpoint of tensors (an unknown or foreign pickle)"
    return f"it is truncated or not a torch checkpoint ({type(error).__name__})"


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
    check_fits(expected, state, source, type(module).__name__)
    check_finite(state, f"weights {source}".strip())
    merged = {k: state.get(k, v) for k, v in expected.items()}
    module.load_state_dict(merged, strict=True)
    return module


def check_fits(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str,
               architecture: str) -> None:
    """CheckpointError listing what of ``state`` does not fit ``expected`` (a state_dict, of a
    real or a ``meta``-device module): names, shapes, and float vs integer dtypes (an int32
    tensor is not silently cast into a float weight)."""
    missing = [k for k in expected if k not in state and not k.endswith(_BENIGN_MISSING)]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected if k in state and state[k].shape != expected[k].shape
    ]
    kinds = [
        f"{k}: checkpoint {state[k].dtype} vs model {expected[k].dtype}"
        for k in expected if k in state
        and state[k].is_floating_point() != expected[k].is_floating_point()
    ]
    if missing or unexpected or mismatched or kinds:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[:3]})")
        if mismatched:
            parts.append(f"shape mismatch {len(mismatched)} (e.g. {mismatched[:2]})")
        if kinds:
            parts.append(f"integer vs float dtype {len(kinds)} (e.g. {kinds[:2]})")
        raise CheckpointError(
            f"weights {source or ''} do not fit the {architecture} architecture: "
            + "; ".join(parts) + ". Is --arch/--model the architecture these weights came from?"
        )


@dataclass
class LoadedModel:
    """A model ready to evaluate: module (eval mode), how to rebuild it, and its input pipeline."""

    module: nn.Module
    spec: dict[str, Any] | None  # model spec (see rdcompress.models.zoo), None if unknown
    preprocessing: Preprocessing
    dataset: str | None  # default dataset name
    source: str  # where the weights came from
    metadata: dict[str, Any] = field(default_factory=dict)  # sidecar contents, if any


def spec_for(name: str) -> dict[str, Any]:
    return {"factory": name, "kwargs": {}} if ":" in name else {"zoo": name, "kwargs": {}}


def load_model(source: str | Path, weights: str | Path | None = None,
               arch: str | None = None, *, trust_code: bool = False) -> LoadedModel:
    """Resolve a model the way the CLI's MODEL argument does.

    - ``runs/x.safetensors`` with a sidecar ``runs/x.json`` (from ``rdcompress train``);
    - a checkpoint path plus ``arch`` (a zoo name or ``package.module:factory``);
    - a zoo name or ``package.module:factory`` plus ``weights`` (or random init if None);
    A ``.rdz`` file (a compressed model) is opened by ``rdcompress.open_model``, which reads
    every source.

    ``source`` and ``arch`` are the caller's own words: a factory named there is imported and
    called. A factory named by a *file* (sidecar or manifest) runs only with ``trust_code``.
    """
    source_str = str(source)
    path = Path(source_str)
    if path.suffix == ".rdz":
        raise ModelError(f"MODEL {source_str!r} is a compressed model; open it with "
                         "rdcompress.open_model(path) or rdcompress.load(path)")
    if path.is_dir():
        raise ModelError(
            f"MODEL {source_str!r} is a directory; give a weights file (a .safetensors with its "
            "sidecar .json, or a checkpoint with --arch), a .rdz file, or a zoo name")
    if path.suffix == ".json" and path.is_file():
        raise ModelError(f"MODEL {source_str!r} is a sidecar (or other JSON) file; give the "
                         f"weights file beside it, e.g. {str(path.with_suffix('.safetensors'))!r}")
    if path.suffix in WEIGHT_SUFFIXES or path.is_file():
        if weights is not None:
            raise ModelError(f"MODEL {source_str!r} is already a weights file; drop --weights")
        if not path.is_file():
            raise CheckpointError(f"model file {source_str!r} does not exist; check the path")
        sidecar = sidecar_path(path)
        metadata: dict[str, Any] = {}
        if arch is None and sidecar.is_file():
            metadata = _read_sidecar(sidecar)
            spec, trusted, origin = metadata["spec"], trust_code, f"sidecar {str(sidecar)!r}"
        elif arch is not None:
            spec, trusted, origin = spec_for(arch), True, f"--arch {arch}"
        else:
            raise ModelError(
                f"{source_str!r} has no sidecar {sidecar.name!r} saying which architecture it "
                "is; pass --arch NAME (a zoo name: " + ", ".join(ZOO) +
                ", or package.module:factory)"
            )
        state = load_state(path)
        module = _build_for(spec, state, trusted, origin, source_str)
        load_weights(module, state, source_str)
        return finish_loaded(module, spec, path.as_posix(), metadata)
    if arch is not None:
        raise ModelError(f"MODEL {source_str!r} is a name, not a file; --arch is for files")
    if ":" not in source_str and source_str not in ZOO:
        raise ModelError(
            f"MODEL {source_str!r} is not an existing file, a zoo model ({', '.join(ZOO)}) or a "
            "package.module:factory; check the path or the name")
    spec = spec_for(source_str)
    module = build_from_spec(spec, trust_code=True, source=f"MODEL {source_str}")
    if weights is not None:
        load_weights(module, load_state(weights), str(weights))
    return finish_loaded(module, spec, str(weights) if weights else "random-init", {})


def _build_for(spec: Any, state: dict[str, torch.Tensor], trusted: bool, origin: str,
               source: str) -> nn.Module:
    """The architecture of ``spec``, checked against ``state`` first when it is a zoo spec (on
    the meta device: a file's kwargs cannot make us allocate a model its tensors do not fill)."""
    if is_zoo_spec(spec):
        meta = build_from_spec(spec, device="meta", source=origin)
        check_fits(meta.state_dict(), state, source, type(meta).__name__)
    return build_from_spec(spec, trust_code=trusted, source=origin)


def finish_loaded(module: nn.Module, spec: dict[str, Any], source: str,
            metadata: dict[str, Any]) -> LoadedModel:
    module.eval()
    entry = ZOO.get(spec["zoo"]) if is_zoo_spec(spec) else None
    if metadata.get("preprocessing") is not None:
        try:
            preprocessing = Preprocessing.from_dict(metadata["preprocessing"])
        except (TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"{source}: the recorded preprocessing "
                                  f"{str(metadata['preprocessing'])[:200]} is not valid "
                                  f"({error}); fix or remove it") from None
    else:
        preprocessing = entry.preprocessing if entry else Preprocessing()
    dataset = metadata.get("dataset") or (entry.dataset if entry else None)
    if dataset is not None and not isinstance(dataset, str):
        raise CheckpointError(f"{source}: the recorded dataset {dataset!r} is not a name")
    return LoadedModel(module, spec, preprocessing, dataset, source, metadata)


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        # ValueError: bad JSON, or integers of more than 4,300 digits
        raise CheckpointError(f"sidecar {str(path)!r} is not valid JSON: "
                              f"{str(error)[:200]}") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT or "spec" not in data:
        raise CheckpointError(f"{str(path)!r} is not an rdcompress model sidecar "
                              f"(expected format {SIDECAR_FORMAT!r} with a 'spec')")
    return data


def parameter_count(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
