"""Results as data: the one schema of a sweep's rows, and the one writer of row tables.

A sweep writes ``sweep.json``: a self-describing file holding the settings, the model it
compressed (path and weight hash), the original's metrics, the documented columns and every row.
``results.csv`` holds the columns only; ``compare`` and the report read ``sweep.json``.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from rdcompress._io import atomic_write_text

SWEEP_FILE = "sweep.json"
SWEEP_FORMAT = 1  # the version of sweep.json's layout


@dataclass
class SweepRow:
    """One compressed model of a sweep: how it was made, its file, and its measured quality."""

    method: str  # the registered method
    objective: str  # the importance objective ("loss" for methods scored on the loss)
    setting: str  # the method's label of the varied setting, e.g. "kept=0.1", "k=16"
    value: float  # the varied setting's value
    paper_ratio: float | None  # the paper's ratio (kept fraction; Huffman bits / 32; ...)
    file_ratio: float  # fp32 bytes of the whole state_dict / bytes of the .rdz file
    file_bytes: int  # the .rdz file's size, everything counted
    bits_per_weight: float  # 8 · file bytes / numbers in the state_dict
    accuracy: float | None  # top-1 accuracy on the evaluation set
    cross_entropy: float | None  # mean cross-entropy on the evaluation set (nats)
    kl: float | None  # E_x KL(f_compressed(x) || f_original(x)) (nats): the paper's eq. 3
    reverse_kl: float | None  # E_x KL(f_original(x) || f_compressed(x)) (nats)
    agreement: float | None  # fraction of samples where both models predict the same class
    seconds: float  # wall time of compress + write + load + evaluate
    seed: int  # the sweep's seed (training, calibration sample, random methods)
    temperature: float | str  # the importance temperature (or "auto")
    hessian_mu: float  # the Hessian regularizer of the importance
    config: dict[str, Any] = field(default_factory=dict)  # the method's whole config (JSON only)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ROW_FIELDS = [f.name for f in fields(SweepRow) if f.name != "config"]  # the CSV columns


def column_docs() -> dict[str, str]:
    """{field: what it means}, read from the comments of ``SweepRow`` (for sweep.json)."""
    import inspect

    names = {f.name for f in fields(SweepRow)}
    docs = {}
    for line in inspect.getsource(SweepRow).splitlines():
        name, sep, rest = line.strip().partition(":")
        if sep and name in names and "#" in rest:
            docs[name] = rest.split("#", 1)[1].strip()
    return {f.name: docs.get(f.name, "") for f in fields(SweepRow)}


def write_rows(rows: Sequence[Mapping[str, Any]], csv_path: str | os.PathLike[str],
               columns: Sequence[str], json_path: str | os.PathLike[str] | None = None) -> None:
    """``rows`` as CSV (``columns`` only, None as an empty cell) and, with ``json_path``, as a
    JSON list of whole rows; each file written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(csv_path, buffer.getvalue())
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(list(rows), indent=2) + "\n")


def write_sweep_file(out: Path, *, config: dict[str, Any], model: dict[str, Any],
                     reference: dict[str, Any], rows: Sequence[Mapping[str, Any]]) -> Path:
    """``sweep.json``: everything needed to read, compare or report a sweep."""
    from rdcompress import __version__

    document = {"format": SWEEP_FORMAT, "rdcompress": __version__, "config": config,
                "model": model, "reference": reference, "columns": column_docs(),
                "rows": list(rows)}
    path = out / SWEEP_FILE
    atomic_write_text(path, json.dumps(document, indent=2) + "\n")
    return path
