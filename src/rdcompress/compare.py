"""Compare finished sweeps at equal file size: one frontier over the runs of several sweeps.

A sweep directory holds ``config.json`` and ``results.json`` (``sweep.py``). Rows of different
sweeps are comparable only when they compressed the same model and were evaluated on the same
samples: ``compare_sweeps`` checks the model's bytes (sha256 of the weights file each sweep
used) and the evaluation settings, and refuses otherwise unless told to allow it. A method that
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

from rdcompress._io import atomic_write_text, sha256_file
from rdcompress.errors import ConfigError, FormatError

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
        _check_comparable(paths, [config for config, _ in sweeps])
    counts = Counter(m for _, rows in sweeps for m in {r["method"] for r in rows})
    merged = []
    for label, (_, rows) in zip(labels, sweeps, strict=True):
        for row in rows:
            method = row["method"]
            merged.append({**row, "sweep": label,
                           "method": f"{label}/{method}" if counts[method] > 1 else method})
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.json", json.dumps(merged, indent=2) + "\n")
    title = " vs ".join(labels)
    # the original's accuracy line only when every sweep evaluated that same model and set
    reference = None if allow_different else _reference(paths[0])
    write_frontier(merged, out, title=title, reference=reference)
    lines = [f"# Compared at equal file size: {title}", "",
             *(f"- `{label}`: {path}" for label, path in zip(labels, paths, strict=True)), "",
             *equal_size_tables(merged),
             "Plot: `frontier.png`. Data: `compare.json`, `frontier.csv`.", ""]
    atomic_write_text(out / "compare.md", "\n".join(lines))
    return Comparison(merged, labels, out)


def _read_sweep(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory; pass the output directories of "
                          "'rdcompress sweep' runs.")
    parsed = []
    for name in ("config.json", "results.json"):
        file = path / name
        if not file.is_file():
            raise ConfigError(f"{path} has no {name}: it is not a finished sweep (run "
                              f"'rdcompress sweep -o {path}' to finish it).")
        try:
            parsed.append(json.loads(file.read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise FormatError(f"{file} is not valid JSON ({error}); rerun the sweep to "
                              "rewrite it.") from None
    config, rows = parsed
    if not isinstance(config, dict) or not isinstance(rows, list) or not all(
            isinstance(r, dict) and "method" in r and "file_ratio" in r for r in rows):
        raise FormatError(f"{path}: config.json/results.json are not those of a sweep.")
    return config, rows


def _check_comparable(paths: list[Path], configs: list[dict[str, Any]]) -> None:
    first = _identity(paths[0], configs[0])
    for path, config in zip(paths[1:], configs[1:], strict=True):
        other = _identity(path, config)
        changed = [f"{key}: {first[key]!r} vs {other[key]!r}" for key in first
                   if key in other and first[key] != other[key]]
        if changed:
            raise ConfigError(
                f"{paths[0]} and {path} did not compress the same model on the same samples "
                f"({'; '.join(changed)}); their rows are not comparable. Pass "
                "--allow-different to compare them anyway.")


def _reference(path: Path) -> dict[str, Any] | None:
    """The original model's metrics on the sweep's test samples (None for older sweeps)."""
    try:
        reference = json.loads((path / "reference.json").read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return reference if isinstance(reference, dict) else None


def _identity(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """What makes two sweeps' rows comparable: the model's bytes and the evaluation set (and,
    where the sweeps recorded it, the original model's accuracy on that set)."""
    identity = {key: config.get(key) for key in EVALUATION_FIELDS}
    reference = _reference(path)
    if reference is not None:
        identity["original accuracy"] = reference.get("accuracy")
    model, weights = str(config.get("model")), config.get("weights")
    if not (weights or Path(model).suffix in (".safetensors", ".rdz") or Path(model).is_file()):
        trained = path / f"{model}.safetensors"  # a zoo model the sweep trained (sweep.py)
        if not trained.is_file():
            raise ConfigError(f"{path} trained {model!r} but {trained} is gone; without it the "
                              "sweeps' models cannot be compared (or pass --allow-different).")
        model = str(trained)
    identity["model"] = _digest(model)
    identity["weights"] = _digest(weights) if weights else None
    return identity


def _digest(name: str) -> str:
    """sha256 of a file; a path that does not resolve from here is compared by name."""
    path = Path(name)
    return f"sha256:{sha256_file(path)[:16]}" if path.is_file() else name
