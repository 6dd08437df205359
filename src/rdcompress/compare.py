"""Compare finished sweeps at equal file size: one frontier over the runs of several sweeps.

A sweep directory holds ``sweep.json`` (``results.py``: settings, model, rows). Rows of different
sweeps are comparable only when they compressed the same model and were evaluated on the same
samples: ``compare_sweeps`` checks the hash of the model's weights that each sweep recorded and
the evaluation settings, and refuses otherwise unless told to allow it. A method that
appears in more than one sweep is renamed ``LABEL/method`` so that each keeps its own front.
Writes ``compare.json`` (the merged rows), ``frontier.csv``, ``frontier.png`` and ``compare.md``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rdcompress._io import atomic_write_text
from rdcompress.errors import ConfigError, FormatError
from rdcompress.results import SWEEP_FILE

# config.json fields that decide which samples a sweep was evaluated on
EVALUATION_FIELDS = ("data", "eval_split", "eval_limit")


@dataclass
class Comparison:
    rows: list[dict[str, Any]]
    labels: list[str]
    output_dir: Path


def compare_sweeps(dirs: Sequence[str | Path], output_dir: str | Path,
                   labels: Sequence[str] | None = None,
                   allow_different: bool = False) -> Comparison:
    """Merge the rows of finished sweeps and write the equal-file-size comparison."""
    from rdcompress.frontier import equal_size_tables, write_frontier

    paths = [Path(d) for d in dirs]
    if len(paths) < 2:
        raise ConfigError(f"compare needs at least two sweep directories; got {len(paths)}.")
    labels = list(labels) if labels else [p.resolve().name for p in paths]
    if len(labels) != len(paths) or len(set(labels)) != len(labels) or any(
            not label or "/" in label for label in labels):
        raise ConfigError(f"labels {labels} must be {len(paths)} distinct non-empty names "
                          "without '/', one per directory (pass --labels a,b,...).")
    sweeps = [_read_sweep(p) for p in paths]
    if not allow_different:
        _check_comparable(paths, sweeps)
    counts = Counter(m for sweep in sweeps for m in {r["method"] for r in sweep["rows"]})
    merged = []
    for label, sweep in zip(labels, sweeps, strict=True):
        for row in sweep["rows"]:
            method = row["method"]
            merged.append({**row, "sweep": label,
                           "method": f"{label}/{method}" if counts[method] > 1 else method})
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.json", json.dumps(merged, indent=2) + "\n")
    title = " vs ".join(labels)
    # the original's accuracy line only when every sweep evaluated that same model and set
    reference = None if allow_different else sweeps[0].get("reference")
    write_frontier(merged, out, title=title, reference=reference)
    lines = [f"# Compared at equal file size: {title}", "",
             *(f"- `{label}`: {path}" for label, path in zip(labels, paths, strict=True)), "",
             *equal_size_tables(merged),
             "Plot: `frontier.png`. Data: `compare.json`, `frontier.csv`.", ""]
    atomic_write_text(out / "compare.md", "\n".join(lines))
    return Comparison(merged, labels, out)


def _read_sweep(path: Path) -> dict[str, Any]:
    """The sweep's ``sweep.json`` (results.py), checked for the keys compare reads."""
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory; pass the output directories of "
                          "'rdcompress sweep' runs.")
    file = path / SWEEP_FILE
    if not file.is_file():
        raise ConfigError(f"{path} has no {SWEEP_FILE}: it is not a finished sweep (run "
                          f"'rdcompress sweep -o {path}' to finish it; a sweep written by an "
                          "older rdcompress must be run again into a new directory).")
    try:
        document = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FormatError(f"{file} is not valid JSON ({error}); rerun the sweep to "
                          "rewrite it.") from None
    rows = document.get("rows") if isinstance(document, dict) else None
    if not (isinstance(rows, list) and isinstance(document.get("config"), dict)
            and isinstance(document.get("model"), dict) and all(
                isinstance(r, dict) and "method" in r and "file_ratio" in r for r in rows)):
        raise FormatError(f"{file} is not the {SWEEP_FILE} of a sweep.")
    return document


def _check_comparable(paths: list[Path], sweeps: list[dict[str, Any]]) -> None:
    first = _identity(sweeps[0])
    for path, sweep in zip(paths[1:], sweeps[1:], strict=True):
        other = _identity(sweep)
        changed = [f"{key}: {first[key]!r} vs {other[key]!r}" for key in first
                   if first[key] != other[key]]
        if changed:
            raise ConfigError(
                f"{paths[0]} and {path} did not compress the same model on the same samples "
                f"({'; '.join(changed)}); their rows are not comparable. Pass "
                "--allow-different to compare them anyway.")


def _identity(sweep: dict[str, Any]) -> dict[str, Any]:
    """What makes two sweeps' rows comparable: the model's weights (their hash, as the sweep
    recorded it), the evaluation set, and the original model's accuracy on it."""
    identity = {key: sweep["config"].get(key) for key in EVALUATION_FIELDS}
    identity["original accuracy"] = (sweep.get("reference") or {}).get("accuracy")
    identity["model weights"] = str(sweep["model"].get("weights_sha256"))[:16]
    return identity
