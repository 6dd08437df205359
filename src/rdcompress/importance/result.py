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
  frozen / no-gradient / fallback parameter lists, ...), ``content_sha256`` (SHA-256 of the
  canonical serialization of every other metadata entry and every tensor: ``content_sha256``).
- the bytes are canonical (``safetensors_bytes``): same contents, same file.

The per-weight objective is ``I_i (w_i - w^_i)^2 + H_i (w_i - w^_i)^4`` with ``H = quartic / 4``
(paper Table 2), ``H = 0`` when ``quartic`` is None.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from torch import Tensor, nn

from rdcompress._io import atomic_write_bytes, state_dict_sha256
from rdcompress.codec.safetensors_out import (
    safetensors_bytes,
    safetensors_dtype_names,
    tensor_bytes,
)
from rdcompress.errors import ChecksumError, CorruptFileError, FormatError, ImportanceMismatchError
from rdcompress.importance.config import OBJECTIVES

FORMAT_TAG = "rdcompress-importance"
FORMAT_VERSION = 1
QUARTIC_PREFIX = "quartic/"
CHECKSUM_KEY = "content_sha256"
MAX_HEADER_BYTES = 100_000_000  # safetensors' own cap on the JSON header


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
        write_file(path, tensors, header("importance", self.objective, self.temperature,
                                         self.num_samples, self.weights_sha256, self.metadata))

    @classmethod
    def load(cls, path: str | os.PathLike[str], model: nn.Module | None = None) -> Importance:
        tensors, meta = read_file(path, "importance")
        quadratic = {k: v for k, v in tensors.items() if not k.startswith(QUARTIC_PREFIX)}
        quartic = {k[len(QUARTIC_PREFIX):]: v for k, v in tensors.items()
                   if k.startswith(QUARTIC_PREFIX)}
        result = cls(meta["objective"], quadratic, quartic or None, meta["temperature"],
                     meta["num_samples"], meta["weights_sha256"], meta["metadata"])
        if model is not None:
            extra = result.metadata
            excluded = extra.get("frozen", []) if extra.get("excluded_frozen") else []
            check_matches(path, quadratic, result.weights_sha256, model, excluded)
        return result


def header(kind: str, objective: str, temperature: float | None, num_samples: int,
           weights_sha256: str, metadata: dict[str, Any]) -> dict[str, str]:
    """The ``__metadata__`` of a file, without the checksum (``write_file`` adds it)."""
    return {
        "format": FORMAT_TAG, "version": str(FORMAT_VERSION), "kind": kind,
        "objective": objective, "temperature": json.dumps(temperature),
        "num_samples": str(num_samples), "weights_sha256": weights_sha256,
        "metadata": json.dumps(metadata, sort_keys=True, default=str),
    }


def content_sha256(metadata: dict[str, str],
                   tensors: Iterable[tuple[str, str, Sequence[int], bytes]]) -> str:
    """SHA-256 of the canonical serialization of a file (docs/importance-format.md, Integrity).

    ``tensors`` holds ``(name, safetensors dtype, shape, raw bytes)``. Hashed, with every
    string UTF-8 and every integer and length a u64 little-endian: the number of metadata
    entries other than ``content_sha256``, then each (key, value) sorted by key as
    len(key) key len(value) value; the number of tensors, then each sorted by name as
    len(name) name len(dtype) dtype ndim dim... len(data) data.
    """
    def u64(value: int) -> bytes:
        return value.to_bytes(8, "little")

    def string(text: str) -> bytes:
        raw = text.encode("utf-8")
        return u64(len(raw)) + raw

    digest = hashlib.sha256()
    entries = sorted((k, v) for k, v in metadata.items() if k != CHECKSUM_KEY)
    digest.update(u64(len(entries)))
    for key, value in entries:
        digest.update(string(key) + string(value))
    ordered = sorted(tensors, key=lambda entry: entry[0])
    digest.update(u64(len(ordered)))
    for name, dtype, shape, raw in ordered:
        digest.update(string(name) + string(dtype) + u64(len(shape)))
        digest.update(b"".join(u64(dim) for dim in shape) + u64(len(raw)))
        digest.update(raw)
    return digest.hexdigest()


def write_file(path: str | os.PathLike[str], tensors: dict[str, Tensor],
               metadata: dict[str, str]) -> None:
    """Write ``tensors`` and ``metadata`` (from ``header``) with their checksum, atomically.

    The bytes depend only on the arguments (``safetensors_bytes``): same inputs, same file.
    """
    names = safetensors_dtype_names()
    digest = content_sha256(metadata, ((name, names[t.dtype], tuple(t.shape), tensor_bytes(t))
                                       for name, t in tensors.items()))
    atomic_write_bytes(path, safetensors_bytes(tensors, {**metadata, CHECKSUM_KEY: digest}))


def read_file(path: str | os.PathLike[str], kind: str) -> tuple[dict[str, Tensor], dict]:
    """Read and validate an importance file; returns tensors and the decoded header.

    Every rule of docs/importance-format.md ("Validation") is checked here, in its order.
    """
    data = _read_bytes(path)
    entries, tensors = _parse_container(path, data)
    raw = entries.pop("__metadata__", None) or {}
    if raw.get("format") != FORMAT_TAG:
        raise FormatError(f"{str(path)!r} is not an rdcompress importance file (format tag "
                          f"{str(raw.get('format'))[:80]!r}, expected {FORMAT_TAG!r})")
    version_text = raw.get("version", "")
    if not re.fullmatch(r"[0-9]{1,9}", version_text):
        raise FormatError(f"{str(path)!r} has a damaged importance header: version "
                          f"{version_text[:80]!r} is not a decimal integer")
    version = int(version_text)
    if version > FORMAT_VERSION:
        raise FormatError(f"{str(path)!r} has importance format version {version}; this "
                          f"rdcompress reads up to {FORMAT_VERSION}: upgrade rdcompress")
    _check_checksum(path, raw, entries, data)
    unknown = sorted(set(raw) - set(_REQUIRED_KEYS) - {CHECKSUM_KEY})
    try:
        if unknown:
            raise ValueError(f"unknown metadata keys {[k[:40] for k in unknown[:3]]}")
        if not re.fullmatch(r"-?[0-9]{1,18}", raw["num_samples"]):
            raise ValueError(f"num_samples {raw['num_samples'][:80]!r} is not a decimal "
                             "integer below 10**18")
        meta = {"kind": raw["kind"], "objective": raw["objective"],
                "temperature": _json(raw["temperature"]),
                "num_samples": int(raw["num_samples"]), "weights_sha256": raw["weights_sha256"],
                "metadata": _json(raw["metadata"])}
    except KeyError as error:
        raise FormatError(f"{str(path)!r} has a damaged importance header: the metadata key "
                          f"{error} is missing") from error
    except ValueError as error:
        raise FormatError(f"{str(path)!r} has a damaged importance header: {error}") from error
    if meta["kind"] != kind:
        raise FormatError(f"{str(path)!r} holds {meta['kind'][:80]!r}, expected {kind!r}")
    problem = _header_problem(version, meta) or _tensor_problem(kind, tensors)
    if problem:
        raise FormatError(f"{str(path)!r} is not a valid importance file: {problem} "
                          "(see docs/importance-format.md); recompute it")
    return tensors, meta


_REQUIRED_KEYS = ("format", "version", "kind", "objective", "temperature", "num_samples",
                  "weights_sha256", "metadata")


def _read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file, or CorruptFileError naming why there are none."""
    name = str(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as error:
        raise CorruptFileError(f"importance file {name!r} does not exist; create it with "
                               "'rdcompress importance MODEL -o FILE'") from error
    except OSError as error:
        raise CorruptFileError(f"importance file {name!r} cannot be read: {error}") from error
    if stat.S_ISDIR(mode):
        raise CorruptFileError(f"importance file {name!r} is a directory; pass the "
                               ".safetensors file written by 'rdcompress importance'")
    if not stat.S_ISREG(mode):
        raise CorruptFileError(f"importance file {name!r} is not a regular file (a device, "
                               "pipe or socket); pass the .safetensors file itself")
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise CorruptFileError(f"importance file {name!r} cannot be read: {error}") from error


def _parse_container(path: object, data: bytes) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The safetensors header (as JSON) and the tensors; CorruptFileError if either is bad.

    The declared header length is checked against the file size before anything is parsed, so
    a damaged length never makes a parser allocate or scan beyond the file.
    """
    def corrupt(problem: str) -> CorruptFileError:
        return CorruptFileError(f"{str(path)!r} is not a readable safetensors file: {problem}; "
                                "recompute it with 'rdcompress importance'")

    if len(data) < 8:
        raise corrupt(f"it has {len(data)} bytes, fewer than the 8-byte header length")
    header_size = int.from_bytes(data[:8], "little")  # safetensors: u64 LE header length
    if header_size > min(len(data) - 8, MAX_HEADER_BYTES):
        raise corrupt(f"the header length {header_size} exceeds the {len(data) - 8} bytes "
                      f"that follow it (or the {MAX_HEADER_BYTES}-byte cap)")
    try:
        tensors = st_load(data)  # validates dtypes, shapes, offsets, holes (Rust)
        entries = json.loads(data[8:8 + header_size], object_pairs_hook=_unique_keys)
    except (SafetensorError, ValueError, RecursionError) as error:
        raise corrupt(str(error)[:200]) from error
    if not isinstance(entries, dict) or set(entries) - {"__metadata__"} != set(tensors):
        raise corrupt("the header's tensor list disagrees with the tensors read")
    return entries, tensors


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    counts = Counter(key for key, _ in pairs)
    if len(counts) != len(pairs):
        twice = sorted(key for key, count in counts.items() if count > 1)
        raise ValueError(f"the JSON names {[k[:40] for k in twice[:3]]} more than once")
    return dict(pairs)


def _json(text: str) -> Any:
    """Decode a JSON metadata value; ValueError (never RecursionError) if it is not JSON."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError as error:
        raise ValueError(f"JSON nested too deeply ({len(text)} characters)") from error
    except ValueError as error:
        raise ValueError(f"invalid JSON {text[:40]!r}...: {str(error)[:120]}") from error


def _check_checksum(path: object, raw: dict[str, str], entries: dict[str, Any],
                    data: bytes) -> None:
    """Verify ``content_sha256`` over the file's own bytes; warn when a file has none."""
    stored = raw.get(CHECKSUM_KEY)
    if stored is None:
        warnings.warn(f"{str(path)!r} has no {CHECKSUM_KEY} (written before rdcompress "
                      "checked importance files): damage to it cannot be detected; rewrite it "
                      "with Importance.load(path).save(path), or recompute it with "
                      "'rdcompress importance'", stacklevel=4)
        return
    start = 8 + int.from_bytes(data[:8], "little")
    actual = content_sha256(raw, (
        (name, entry["dtype"], entry["shape"],
         data[start + entry["data_offsets"][0]:start + entry["data_offsets"][1]])
        for name, entry in entries.items()))
    if stored != actual:
        raise ChecksumError(f"{str(path)!r} is damaged: its {CHECKSUM_KEY} is {stored[:80]!r} "
                            f"but its content hashes to {actual!r}; recompute it with "
                            "'rdcompress importance' (or copy it again)")


def _header_problem(version: int, meta: dict) -> str | None:
    """What is wrong with a decoded header (docs/importance-format.md), or None."""
    temperature, extra = meta["temperature"], meta["metadata"]
    if version < 1:
        return f"version {version} < 1"
    if meta["objective"] not in OBJECTIVES:
        return f"unknown objective {meta['objective'][:80]!r}"
    if temperature is not None and not _positive_finite(temperature):
        return f"temperature {repr(temperature)[:80]} is neither null nor a finite number > 0"
    if meta["num_samples"] < 0:
        return f"num_samples {meta['num_samples']} < 0"
    if meta["num_samples"] == 0 and meta["kind"] == "importance" \
            and meta["objective"] != "baseline":
        return f"num_samples 0 with objective {meta['objective']!r} (only 'baseline' has none)"
    if not re.fullmatch(r"[0-9a-f]{64}", meta["weights_sha256"]):
        return f"weights_sha256 {meta['weights_sha256'][:80]!r} is not 64 lowercase hex digits"
    if not isinstance(extra, dict):
        return "the 'metadata' field is not a JSON object"
    return _provenance_problem(meta["kind"], extra)


def _provenance_problem(kind: str, extra: dict) -> str | None:
    """The ``metadata`` keys that readers act on must have their documented types."""
    def string_list(value: object) -> bool:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)

    if not isinstance(extra.get("config", {}), dict):
        return "metadata 'config' is not a JSON object"
    if not string_list(extra.get("frozen", [])):
        return "metadata 'frozen' is not a list of parameter names"
    if not isinstance(extra.get("excluded_frozen", False), bool):
        return "metadata 'excluded_frozen' is not true or false"
    if kind == "partial-sums":
        if not string_list(extra.get("touched", [])):
            return "metadata 'touched' is not a list of parameter names"
        mu = extra.get("mu", 0.0)
        if mu != 0 and not _positive_finite(mu):
            return f"metadata 'mu' {repr(mu)[:80]} is not a finite number >= 0"
    return None


def _positive_finite(value: object) -> bool:
    """True for a JSON number (not a boolean) that is finite and > 0 as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except OverflowError:  # a 4,000-digit integer
        return False


def _tensor_problem(kind: str, tensors: dict[str, Tensor]) -> str | None:
    """Keys, dtypes, shapes and values of the tensors of a ``kind`` file, or None if valid."""
    if not tensors:
        return "it holds no tensors (compress needs one per compressed parameter)"
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
                  model: nn.Module, excluded: Iterable[str] = ()) -> None:
    """Raise ImportanceMismatchError unless names, shapes and weight hash fit ``model``.

    Every floating-point parameter needs a tensor, except those in ``excluded`` (frozen
    parameters the file says were left out).
    """
    params = dict(model.named_parameters())
    unknown = sorted(set(tensors) - set(params))
    if unknown:
        raise ImportanceMismatchError(
            f"importance file {str(path)!r} has parameters the model lacks: {unknown[:5]}"
            f"{' ...' if len(unknown) > 5 else ''}; it was computed for another architecture")
    missing = sorted(n for n, p in params.items()
                     if n not in tensors and n not in set(excluded) and p.is_floating_point())
    if missing:
        raise ImportanceMismatchError(
            f"importance file {str(path)!r} has no importance for the model's parameters "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''} ({len(missing)} of "
            f"{len(params)}); it was computed for another architecture or is damaged: "
            "recompute it with 'rdcompress importance'")
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
