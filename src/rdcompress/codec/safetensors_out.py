"""Byte-deterministic safetensors writing, and ``.rdz`` -> ``.safetensors``.

``safetensors.torch.save`` keeps ``__metadata__`` in a Rust ``HashMap`` whose iteration order is
randomized per process, so two runs with identical inputs write different bytes as soon as the
metadata has two keys. ``safetensors_bytes`` writes the same container canonically instead
(metadata keys sorted, tensors in a fixed order); every safetensors file rdcompress writes goes
through it.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from rdcompress._io import atomic_write_bytes
from rdcompress.errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor

MANIFEST_METADATA_KEY = "rdz_manifest"


def safetensors_dtype_names() -> dict:
    """``{torch dtype: safetensors dtype string}`` (the names of the safetensors spec)."""
    import torch

    names = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
             torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
             torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
             torch.float8_e4m3fn: "F8_E4M3", torch.float8_e5m2: "F8_E5M2",
             torch.complex64: "C64"}
    for attr, name in (("uint16", "U16"), ("uint32", "U32"), ("uint64", "U64")):
        if hasattr(torch, attr):
            names[getattr(torch, attr)] = name
    return names


def tensor_bytes(tensor: Tensor) -> bytes:
    """The raw little-endian bytes of ``tensor`` as safetensors stores them (C order)."""
    import torch

    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    # Every machine torch supports is little-endian, the byte order safetensors specifies.
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def safetensors_bytes(tensors: dict[str, Tensor], metadata: dict[str, str] | None = None
                      ) -> bytes:
    """A safetensors file holding ``tensors`` and ``metadata``, the same bytes on every run.

    Layout (the safetensors format): an 8-byte little-endian header length N, N bytes of
    compact JSON (``__metadata__`` first with its keys sorted, then the tensors in data order,
    no spaces, non-ASCII written as UTF-8, padded with spaces to a multiple of 8), then the
    tensor data without holes. Data order: larger element sizes first (so that every tensor is
    aligned to its element size), then by name. Readable by ``safetensors.torch.load``.
    """
    names = safetensors_dtype_names()
    metadata = metadata or {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ConfigError(f"safetensors metadata must map str to str; got {key!r}: "
                              f"{type(value).__name__}")
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    if "__metadata__" in tensors:
        raise ConfigError("a tensor cannot be named '__metadata__' in a safetensors file")
    unknown = sorted({str(t.dtype) for t in tensors.values() if t.dtype not in names})
    if unknown:
        raise ConfigError(f"dtypes {unknown} cannot be stored in safetensors; convert them to "
                          f"one of {sorted(str(d) for d in names)}")
    order = sorted(tensors, key=lambda name: (-tensors[name].element_size(), name))
    chunks, offset = [], 0
    for name in order:
        tensor = tensors[name]
        raw = tensor_bytes(tensor)
        header[name] = {"dtype": names[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def decompress_to_safetensors(
    rdz_path: str | os.PathLike[str], out_path: str | os.PathLike[str]
) -> dict:
    """Decode every tensor (bit-exact, original dtypes) and write them atomically.

    The safetensors metadata holds the manifest as JSON under ``"rdz_manifest"`` and the format
    version under ``"rdz_format_version"``. Returns the manifest. The same ``.rdz`` always
    gives the same bytes (``safetensors_bytes``).
    """
    from rdcompress.codec.container import read_rdz

    contents = read_rdz(rdz_path)  # validates everything before anything is written
    metadata = {
        MANIFEST_METADATA_KEY: json.dumps(contents.manifest, separators=(",", ":")),
        "rdz_format_version": str(contents.format_version),
    }
    tensors = {name: tensor.contiguous() for name, tensor in contents.to_torch().items()}
    atomic_write_bytes(out_path, safetensors_bytes(tensors, metadata))
    return contents.manifest
