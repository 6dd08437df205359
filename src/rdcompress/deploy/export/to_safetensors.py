"""Export target ``safetensors``: the dense decoded weights (bit-exact), for any tool."""

from __future__ import annotations

import os
from pathlib import Path

from rdcompress.codec import decompress_to_safetensors
from rdcompress.deploy.export.options import ExportOptions, ExportResult


def export_safetensors(rdz_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
                       options: ExportOptions) -> ExportResult:
    """``rdcompress decompress``'s file: every tensor decoded, the manifest in the metadata.
    ``options`` are not used (no architecture is needed to write weights)."""
    manifest = decompress_to_safetensors(rdz_path, out_path)
    path = Path(out_path)
    return ExportResult(path, "safetensors", path.stat().st_size,
                        {"method": manifest.get("method") if isinstance(manifest, dict)
                         else None})
