"""``.rdz`` -> ``.safetensors``: the decoded weights, with the manifest in the metadata."""

from __future__ import annotations

import json
import os

from rdcompress._io import atomic_write_bytes
from rdcompress.codec.container import read_rdz

MANIFEST_METADATA_KEY = "rdz_manifest"


def decompress_to_safetensors(
    rdz_path: str | os.PathLike[str], out_path: str | os.PathLike[str]
) -> dict:
    """Decode every tensor (bit-exact, original dtypes) and write them atomically.

    The safetensors metadata holds the manifest as JSON under ``"rdz_manifest"`` and the format
    version under ``"rdz_format_version"``. Returns the manifest.
    """
    from safetensors.torch import save

    contents = read_rdz(rdz_path)  # validates everything before anything is written
    metadata = {
        MANIFEST_METADATA_KEY: json.dumps(contents.manifest, separators=(",", ":")),
        "rdz_format_version": str(contents.format_version),
    }
    tensors = {name: tensor.contiguous() for name, tensor in contents.to_torch().items()}
    atomic_write_bytes(out_path, save(tensors, metadata=metadata))
    return contents.manifest
