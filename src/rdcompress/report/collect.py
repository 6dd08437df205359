"""What a report shows, read from finished runs: one JSON-ready document.

A RUN is a sweep directory (``sweep.json`` + ``models/*.rdz``, written by ``rdcompress sweep``),
or a single ``.rdz`` measured against its original on the spot (``single.py``).
Every row becomes a *model*: its settings and measured quality from ``sweep.json``, its file's
sha256 and per-layer accounting from the ``.rdz`` (the codec summary that ``rdcompress info``
prints, joined with the manifest's per-layer distortion). Pareto fronts per method come from
``rdcompress.frontier.pareto_front``, so the report and ``frontier.png`` agree.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rdcompress._io import sha256_file
from rdcompress.errors import ConfigError, CorruptFileError
from rdcompress.frontier import METRICS, pareto_front
from rdcompress.results import SWEEP_FILE

# row fields copied into the report, per model (the rest of a row stays in sweep.json)
MODEL_FIELDS = ("method", "objective", "setting", "value", "paper_ratio", "file_ratio",
                "file_bytes", "bits_per_weight", "accuracy", "cross_entropy", "kl",
                "reverse_kl", "agreement", "seconds", "config")


@dataclass
class Sweep:
    """One RUN directory as read from disk."""

    path: Path  # the sweep directory (a single file's folder)
    label: str  # its name in the report (series "LABEL/method" when several sweeps)
    document: dict[str, Any]  # sweep.json
    file: Path | None = None  # a single .rdz RUN: its one model's file

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self.document.get("rows", []))

    def file_of(self, row: dict[str, Any]) -> Path:
        """The ``.rdz`` of ``row``."""
        return self.file if self.file is not None else model_file(self.path, row)


@dataclass
class Collected:
    """The report's data before evaluation: sweeps, models and fronts (all JSON-ready)."""

    sweeps: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    fronts: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # {metric: {series:
    #   model indices on its front, by file ratio}}


def read_sweep(path: str | Path, label: str | None = None) -> Sweep:
    """The sweep in directory ``path`` (its ``sweep.json``); ConfigError if there is none."""
    directory = Path(path)
    if directory.suffix == ".json" and directory.is_file():
        directory = directory.parent
    file = directory / SWEEP_FILE
    if not file.is_file():
        raise ConfigError(
            f"{path}: no {SWEEP_FILE} there; RUN must be the output directory of "
            "'rdcompress sweep' (sweeps written before sweep.json existed: run the sweep "
            "again into the same directory, it resumes without recomputing)")
    try:
        document = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise CorruptFileError(f"{file}: not valid JSON ({error})") from error
    if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
        raise CorruptFileError(f"{file}: expected an object with a 'rows' list (sweep.json "
                               "of 'rdcompress sweep')")
    return Sweep(directory, label or directory.resolve().name, document)


def read_run(path: str | Path, label: str | None = None, **single: Any) -> Sweep:
    """A RUN: a sweep directory (or its sweep.json), or a ``.rdz`` file measured against
    ``single["original"]`` on ``single["data"]`` (``single.single_sweep``'s arguments)."""
    file = Path(path)
    if file.suffix != ".rdz":
        return read_sweep(file, label)
    from rdcompress.report.single import single_sweep

    document = single_sweep(file, **single)
    return Sweep(file.parent, label or file.stem, document, file=file)


def model_file(sweep_dir: Path, row: dict[str, Any]) -> Path:
    """The ``.rdz`` a sweep wrote for ``row`` (the name ``sweep._one_run`` gives it)."""
    stem = f"{row['method']}-{row['objective']}-{row['value']:g}".replace("+", "-")
    return sweep_dir / "models" / f"{stem}.rdz"


def collect(sweeps: Sequence[Sweep]) -> Collected:
    """Every row of ``sweeps`` as a model, with its file's layers; fronts per series."""
    labels = [s.label for s in sweeps]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"RUN labels {labels} repeat; give distinct --labels")
    collected = Collected()
    several = len(sweeps) > 1
    for sweep_index, sweep in enumerate(sweeps):
        collected.sweeps.append(_sweep_entry(sweep))
        for row in sweep.rows:
            model = {name: row.get(name) for name in MODEL_FIELDS}
            series = f"{sweep.label}/{row['method']}" if several else row["method"]
            path = sweep.file_of(row)
            model.update(sweep=sweep_index, series=series, file=path.name, path=str(path),
                         id=len(collected.models))
            model.update(_file_entry(path))
            collected.models.append(model)
    collected.fronts = fronts(collected.models)
    return collected


def fronts(models: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[int]]]:
    """{metric: {series: ids of the models on the series' Pareto front, by file ratio}}."""
    out: dict[str, dict[str, list[int]]] = {}
    for metric in METRICS:
        by_series: dict[str, list[dict[str, Any]]] = {}
        for model in models:
            by_series.setdefault(model["series"], []).append(model)
        out[metric] = {series: [m["id"] for m in pareto_front(rows, metric)]
                       for series, rows in by_series.items()}
    return out


def _sweep_entry(sweep: Sweep) -> dict[str, Any]:
    document = sweep.document
    return {"label": sweep.label, "path": str(sweep.path), "format": document.get("format"),
            "rdcompress": document.get("rdcompress"), "config": document.get("config", {}),
            "model": document.get("model", {}), "reference": document.get("reference", {}),
            "columns": document.get("columns", {})}


def _file_entry(path: Path) -> dict[str, Any]:
    """sha256 and per-layer table of one ``.rdz``; {"missing": reason} if it cannot be read."""
    from rdcompress.codec import inspect_rdz

    if not path.is_file():
        warnings.warn(f"{path} is missing: its model is shown without layers or evaluation",
                      stacklevel=2)
        return {"missing": "file not found", "sha256": None, "layers": None}
    summary, manifest = inspect_rdz(path, return_manifest=True)  # one decode
    return {"sha256": sha256_file(path), "layers": layer_table(summary, manifest),
            "header_bytes": summary.header_bytes, "numel": summary.numel,
            "original_bytes": summary.original_bytes,
            "coding_overhead": _round(summary.coding_overhead)}


def layer_table(summary: Any, manifest: dict[str, Any]) -> dict[str, list[Any]]:
    """Per-tensor columns of a file (one list per column, one entry per stored tensor).

    bytes, bits_per_weight and kind come from the codec summary (``RdzSummary``); the
    manifest's "layers" add the method's per-layer distortion (its own units: squared error,
    importance-weighted for importance methods) for the tensors it compressed, None elsewhere.
    ``share`` = tensor bytes / file bytes; ``distortion_share`` = distortion / Σ distortions.
    """
    stats = {layer["name"]: layer for layer in manifest.get("layers", []) or []
             if isinstance(layer, dict) and "name" in layer}
    tensors = summary.tensors
    distortions = [_finite_or_none(stats.get(t.name, {}).get("distortion")) for t in tensors]
    total = sum(d for d in distortions if d is not None)
    return {
        "name": [t.name for t in tensors],
        "shape": ["×".join(map(str, t.shape)) or "scalar" for t in tensors],
        "kind": [t.kind for t in tensors],
        "k": [t.k for t in tensors],
        "kept": [_round(t.kept_fraction) for t in tensors],
        "bits_per_weight": [_round(t.bits_per_weight) for t in tensors],
        "bytes": [t.bytes for t in tensors],
        "share": [_round(t.bytes / summary.file_bytes) for t in tensors],
        "distortion": [_round(d) for d in distortions],
        "distortion_share": [_round(d / total) if d is not None and total > 0 else None
                             for d in distortions],
        "rank": [stats.get(t.name, {}).get("rank") for t in tensors],
    }


def _finite_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _round(value: float | None, digits: int = 5) -> float | None:
    """``value`` to ``digits`` significant digits (the page shows 3-4; smaller JSON)."""
    if value is None or not math.isfinite(value) or value == 0:
        return value
    return float(f"{value:.{digits}g}")
