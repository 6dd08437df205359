"""Hyperparameter sweeps: one rate–distortion sweep per value of the importance temperature T
(paper App. C.3.1, Figure 11) or of the Hessian regularizer μ (App. C.3.2, Figure 12).

The model is prepared (trained if it is a zoo name without weights) once, in the output
directory; each value gets its own sub-sweep ``{T|mu}={value}/`` (resumable, with its own cached
importances); the rows of all of them, with the varied value, go to ``vary-{name}.csv/json`` and
``vary-{name}.png`` (accuracy and cross-entropy against the value, one line per method,
objective and setting, as the paper's figures), and ``vary-{name}.md`` names the best value per
setting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rdcompress._io import atomic_write_text
from rdcompress.errors import ConfigError
from rdcompress.results import ROW_FIELDS, write_rows
from rdcompress.sweep import SweepConfig, prepare_model, run_sweep

PARAMETERS = {"temperature": ("temperature", "T"), "mu": ("hessian_mu", "mu")}


@dataclass
class VaryResult:
    parameter: str
    values: list[float]
    rows: list[dict[str, Any]]  # every sub-sweep's rows, each with "varied" = its value
    output_dir: Path
    reference: dict[str, Any]
    seconds: float


def parse_vary(text: str) -> tuple[str, list[float]]:
    """``"temperature=1,2,4"`` -> ("temperature", [1.0, 2.0, 4.0]); ConfigError otherwise."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or name not in PARAMETERS:
        raise ConfigError(f"--vary {text!r}: expected NAME=V1,V2,... with NAME one of "
                          f"{sorted(PARAMETERS)}, e.g. temperature=1,2,4,8.")
    try:
        numbers = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--vary {text!r}: values must be numbers.") from None
    if not numbers or len(set(numbers)) != len(numbers):
        raise ConfigError(f"--vary {text!r}: give distinct values, e.g. {name}=1,2,4.")
    if name == "temperature" and min(numbers) <= 0:
        raise ConfigError(f"--vary {text!r}: temperatures must be > 0.")
    if name == "mu" and min(numbers) < 0:
        raise ConfigError(f"--vary {text!r}: mu must be >= 0.")
    return name, numbers


def run_vary(config: SweepConfig, parameter: str, values: list[float]) -> VaryResult:
    """One sub-sweep of ``config`` per value of ``parameter`` ("temperature" or "mu")."""
    if parameter not in PARAMETERS:
        raise ConfigError(f"parameter {parameter!r} must be one of {sorted(PARAMETERS)}.")
    start = time.perf_counter()
    field, short = PARAMETERS[parameter]
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded_path = prepare_model(config, out)  # trained once, shared by every value
    base = replace(config, model=loaded_path[0], weights=loaded_path[1])
    rows: list[dict[str, Any]] = []
    reference: dict[str, Any] = {}
    for value in values:
        # the varied field is picked at run time, so the changes are typed loosely
        changes: dict[str, Any] = {"output_dir": str(out / f"{short}={value:g}"), field: value}
        sub = replace(base, **changes)
        result = run_sweep(sub)
        reference = result.reference
        rows.extend({**row, "varied": value} for row in result.rows)
    _write(rows, out, parameter)
    from rdcompress.plots import plot_vary

    plot_vary(rows, out / f"vary-{parameter}.png", parameter, reference=reference)
    _write_summary(rows, out / f"vary-{parameter}.md", parameter, reference)
    return VaryResult(parameter, list(values), rows, out, reference,
                      time.perf_counter() - start)


def _write(rows: list[dict[str, Any]], out: Path, parameter: str) -> None:
    write_rows(rows, out / f"vary-{parameter}.csv", ["varied", *ROW_FIELDS],
               out / f"vary-{parameter}.json")


def best_values(rows: list[dict[str, Any]], metric: str) -> dict[tuple[str, str, str], dict]:
    """Per (method, objective, setting): the row with the best ``metric`` over the values."""
    sign = -1.0 if metric == "accuracy" else 1.0  # accuracy up, losses down
    best: dict[tuple[str, str, str], dict] = {}
    for row in rows:
        key = (row["method"], row["objective"], row["setting"])
        if key not in best or sign * row[metric] < sign * best[key][metric]:
            best[key] = row
    return best


def _write_summary(rows: list[dict[str, Any]], path: Path, parameter: str,
                   reference: dict[str, Any]) -> None:
    lines = [f"# Effect of {parameter}", "",
             f"Original model: accuracy {reference.get('accuracy', float('nan')):.4f}, "
             f"cross-entropy {reference.get('cross_entropy', float('nan')):.4f}.", "",
             "Chosen on the test split, as the paper chose T (App. C.3.1: the T of best "
             "accuracy); a value chosen this way is optimistic.", ""]
    for metric in ("accuracy", "cross_entropy"):
        lines += [f"## best {parameter} by {metric}", "",
                  f"| method | objective | setting | best {parameter} | {metric} | "
                  f"at the first value ({rows[0]['varied']:g}) |", "|---|---|---|---|---|---|"]
        first = {(r["method"], r["objective"], r["setting"]): r for r in rows
                 if r["varied"] == rows[0]["varied"]}
        for key, row in sorted(best_values(rows, metric).items()):
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {row['varied']:g} | "
                         f"{row[metric]:.4f} | {first[key][metric]:.4f} |")
        lines.append("")
    atomic_write_text(path, "\n".join(lines))
