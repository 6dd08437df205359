"""Export targets: a ``.rdz`` file to the formats other runtimes read.

``TARGETS`` maps a format name to its exporter, one module each:

- ``"onnx"`` (``to_onnx``): an ONNX graph whose quantized weights stay palettized (uint8 /
  packed 1/2/4-bit index initializers + codebook + Gather), pruned weights as kept values + a
  bit mask expanded in the graph, low-rank weights as their factors; needs the ``export``
  extra.
- ``"safetensors"`` (``to_safetensors``): the dense decoded weights, for any tool.

Every exporter is ``(rdz_path, out_path, options) -> ExportResult``; adding a target is one
module and one line in ``TARGETS``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from rdcompress.deploy.export.options import ExportOptions, ExportResult
from rdcompress.deploy.export.to_onnx import export_onnx
from rdcompress.deploy.export.to_safetensors import export_safetensors
from rdcompress.errors import ConfigError

Exporter = Callable[[str | os.PathLike[str], str | os.PathLike[str], ExportOptions],
                    ExportResult]

TARGETS: dict[str, Exporter] = {
    "onnx": export_onnx,
    "safetensors": export_safetensors,
}


def export(rdz_path: str | os.PathLike[str], format: str, out_path: str | os.PathLike[str],
           options: ExportOptions | None = None) -> ExportResult:
    """Write ``rdz_path``'s model as ``format`` (a key of ``TARGETS``) to ``out_path``."""
    if format not in TARGETS:
        raise ConfigError(f"export format {format!r} is unknown; use one of {sorted(TARGETS)}.")
    return TARGETS[format](rdz_path, out_path, options or ExportOptions())


__all__ = ["ExportOptions", "ExportResult", "TARGETS", "export", "export_onnx",
           "export_safetensors"]
