"""The ``Importance`` result and its file format (specification: docs/importance-format.md).

File format (safetensors, written atomically; ``read_file`` validates all of it):

- tensors: ``<parameter name>`` -> quadratic importance I (float32, the parameter's shape);
  ``quartic/<parameter name>`` -> E[(d2L/dw2)^2] (only for "gradient+hessian");
  partial-sum files (``ImportanceAccumulator.save``) use ``sum/<name>`` and ``quartic_sum/<name>``
  in float64 instead.
- metadata (all strings): ``format`` = "rdcompress-importance", ``version`` = "1",
  ``kind`` = "importance" | "partial-sums", ``objective``, ``temperature`` (JSON: number or
  null), ``num_samples``, ``weights_sha256`` (``rdcompress._io.state_dict_sha256`` of the
  model's ``named_parameters()``), ``metadata`` (JSON object: config, mu, estimator, seed,
  frozen / no-gradient / fallback parameter lists, ...).

The per-weight objective is ``I_i (w_i - w^_i)^2 + H_i (w_i - w^_i)^4`` with ``H = quartic / 4``
(paper Table 2), ``H = 0`` when ``quartic`` is None.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from rdcompress._io import atomic_write_bytes, state_dict_sha256
from rdcompress.errors import CorruptFileError, FormatError, ImportanceMismatchError
from rdcompress.importance.config import OBJECTIVES

FORMAT_TAG = "rdcompress-importance"
FORMAT_VERSION = 1
QUARTIC_PREFIX = "quartic/"


def weights_hash(model: nn.Module) -> str:
    return state_dict_sha256(dict(model.named_parameters()))


@dataclass
class Importance:
    objective: str
    quadratic: dict[str, Tensor]             # I_i per parameter, parameter-shaped float32
    quartic: dict[str, Tensor] | None        # E[(d2L/dw2)^2] (gradient+hessian only)
    temperature: float | None
    num_samples: int
    weights_sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def quartic_weight(self, name: str) -> Tensor | None:
        """``H = quartic / 4`` for parameter ``name`` (paper Table 2), or None."""
        if self.quartic is None or name not in self.quartic:
            return None
        return self.quartic[name] / 4

    def save(self, path: str | os.PathLike[str]) -> None:
        tensors = {name: t.detach().to("cpu", torch.float32).contiguous()
                   for name, t in self.quadratic.items()}
        for name, t in (self.quartic or {}).items():
            tensors[QUARTIC_PREFIX + name] = t.detach().to("cpu", torch.float32).contiguous()
        atomic_write_bytes(path, st_save(tensors, metadata=header(
            "importance", self.objective, self.temperature, self.num_samples,
            self.weights_sha256, self.metadata)))

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: nn.Module | None = None) -> Importance:
        tensors, meta = read_file(path, "importance")
        quadratic = {k: v for k, v in tensors.items() if not k.startswith(QUARTIC_PREFIX)}
        quartic = {k[len(QUARTIC_PREFIX):]: v for k, v in tensors.items()
                   if k.startswith(QUARTIC_PREFIX)}
        result = cls(meta["objective"], quadratic, quartic or None, meta["temperature"],
                     meta["num_samples"], meta["weights_sha256"], meta["metadata"])
        if model is not None:
            check_matches(path, quadratic, result.weights_sha256, model)
        return result


def header(kind: str, objective: str, temperature: float | None, num_samples: int,
           weights_sha256: str, metadata: dict[str, Any]) -> dict[str, str]:
    return {
        "format": FORMAT_TAG, "version": str(FORMAT_VERSION), "kind": kind,
        "objective": objective, "temperature": json.dumps(temperature),
        "num_samples": str(num_samples), "weights_sha256": weights_sha256,
        "metadata": json.dumps(metadata, sort_keys=True, default=str),
    }


def read_file(path: str | os.PathLike[str], kind: str) -> tuple[dict[str, Tensor], dict]:
    """Read and validate an importance file; returns tensors and the decoded header."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError as error:
        raise CorruptFileError(f"importance file {str(path)!r} does not exist; create it with "
                               "'rdcompress importance MODEL -o FILE'") from error
    try:
        tensors = st_load(data)
        header_size = int.from_bytes(data[:8], "little")  # safetensors: u64 LE header length
        raw = json.loads(data[8:8 + header_size]).get("__metadata__") or {}
    except (SafetensorError, ValueError, OSError) as error:
        raise CorruptFileError(f"{str(path)!r} is not a readable safetensors file: {error}"
                               ) from error
    if raw.get("format") != FORMAT_TAG:
        raise FormatError(f"{str(path)!r} is not an rdcompress importance file (format tag "
                          f"{raw.get('format')!r}, expected {FORMAT_TAG!r})")
    try:
        version = int(raw.get("version", ""))
        meta = {"kind": raw["kind"], "objective": raw["objective"],
                "temperature": json.loads(raw["temperature"]),
                "num_samples": int(raw["num_samples"]), "weights_sha256": raw["weights_sha256"],
                "metadata": json.loads(raw["metadata"])}
    except (KeyError, ValueError) as error:
        raise FormatError(f"{str(path)!r} has a damaged importance header: {error}") from error
    if version > FORMAT_VERSION:
        raise FormatError(f"{str(path)!r} has importance format version {version}; this "
                          f"rdcompress reads up to {FORMAT_VERSION}: upgrade rdcompress")
    if meta["kind"] != kind:
        raise FormatError(f"{str(path)!r} holds {meta['kind']!r}, expected {kind!r}")
    problem = _header_problem(version, meta) or _tensor_problem(kind, tensors)
    if problem:
        raise FormatError(f"{str(path)!r} is not a valid importance file: {problem} "
                          "(see docs/importance-format.md); recompute it")
    return tensors, meta


def _header_problem(version: int, meta: dict) -> str | None:
    """What is wrong with a decoded header (docs/importance-format.md), or None."""
    temperature = meta["temperature"]
    if version < 1:
        return f"version {version} < 1"
    if meta["objective"] not in OBJECTIVES:
        return f"unknown objective {meta['objective']!r}"
    if temperature is not None and (isinstance(temperature, bool)
                                    or not isinstance(temperature, int | float)
                                    or not math.isfinite(temperature) or temperature <= 0):
        return f"temperature {temperature!r} is neither null nor a finite number > 0"
    if meta["num_samples"] < 0:
        return f"num_samples {meta['num_samples']} < 0"
    if not re.fullmatch(r"[0-9a-f]{64}", meta["weights_sha256"]):
        return f"weights_sha256 {meta['weights_sha256'][:80]!r} is not 64 lowercase hex digits"
    if not isinstance(meta["metadata"], dict):
        return "the 'metadata' field is not a JSON object"
    return None


def _tensor_problem(kind: str, tensors: dict[str, Tensor]) -> str | None:
    """Keys, dtypes, shapes and values of the tensors of a ``kind`` file, or None if valid."""
    if kind == "importance":
        main, quartic, dtype = "", QUARTIC_PREFIX, torch.float32
        first = {k: v for k, v in tensors.items() if not k.startswith(QUARTIC_PREFIX)}
    else:
        main, quartic, dtype = "sum/", "quartic_sum/", torch.float64
        strays = sorted(k for k in tensors if not k.startswith((main, quartic)))
        if strays:
            return f"keys {strays[:3]} have neither prefix {main!r} nor {quartic!r}"
        first = {k[len(main):]: v for k, v in tensors.items() if k.startswith(main)}
    second = {k[len(quartic):]: v for k, v in tensors.items() if k.startswith(quartic)}
    for name, value in [*first.items(), *second.items()]:
        if value.dtype != dtype:
            return f"tensor {name!r} has dtype {value.dtype}, expected {dtype}"
        if not torch.isfinite(value).all():
            return f"tensor {name!r} has NaN or inf entries"
    for name, value in second.items():
        if name not in first or first[name].shape != value.shape:
            return (f"quartic tensor {name!r} has no quadratic tensor of the same shape "
                    f"{tuple(value.shape)}")
    if second and set(second) != set(first):
        return f"parameters {sorted(set(first) - set(second))[:3]} have no quartic tensor"
    return None


def check_matches(path: object, tensors: dict[str, Tensor], weights_sha256: str,
                  model: nn.Module) -> None:
    """Raise ImportanceMismatchError unless names, shapes and weight hash fit ``model``."""
    params = dict(model.named_parameters())
    unknown = sorted(set(tensors) - set(params))
    if unknown:
        raise ImportanceMismatchError(
            f"importance file {str(path)!r} has parameters the model lacks: {unknown[:5]}"
            f"{' ...' if len(unknown) > 5 else ''}; it was computed for another architecture")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(params[name].shape):
            raise ImportanceMismatchError(
                f"importance for {name!r} has shape {tuple(tensor.shape)} but the model's "
                f"parameter has shape {tuple(params[name].shape)}; recompute the importance")
    actual = weights_hash(model)
    if actual != weights_sha256:
        raise ImportanceMismatchError(
            f"importance file {str(path)!r} was computed for weights with hash "
            f"{weights_sha256[:12]}..., but the model's weights hash to {actual[:12]}...; "
            "recompute it for these weights with 'rdcompress importance'")
