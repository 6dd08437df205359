"""Methods compared at equal file size: the rate–distortion frontier of each method.

Every sweep row is one real ``.rdz`` file: its rate is ``file_ratio`` (fp32 bytes ÷ file bytes,
everything counted) and its distortion is measured on the model's outputs (accuracy, KL to the
original). A method's *frontier* is the set of its runs (over all objectives and settings) that
no other run of the same method beats at an equal or smaller file: the best the method can do at
each size. ``equal_size_table`` reads the frontiers at common file ratios — "the best accuracy
each method reaches with a file at least R times smaller than fp32".

Pure functions over row dicts (the rows of ``results.json``), so any comparison can be redrawn
from saved results; ``write_frontier`` writes ``frontier.png`` and ``frontier.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdcompress.compress.registry import names
from rdcompress.compress.registry import style as method_style
from rdcompress.results import write_rows

Row = dict[str, Any]
# metric -> True when higher is better
METRICS = {"accuracy": True, "kl": False, "cross_entropy": False, "agreement": True}
FRONTIER_FIELDS = ["method", "objective", "setting", "file_ratio", "file_bytes",
                   "bits_per_weight", "accuracy", "cross_entropy", "kl", "agreement"]


def pareto_front(rows: Sequence[Row], metric: str = "accuracy") -> list[Row]:
    """The rows no other row beats on ``metric`` with an equal or larger file ratio.

    Returned by file ratio, smallest first; ``metric``'s direction is ``METRICS[metric]``.
    Rows missing the ratio or the metric (or with a NaN) are ignored.
    """
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r} must be one of {sorted(METRICS)}")
    higher = METRICS[metric]
    valid = [r for r in rows if _finite(r.get("file_ratio")) and _finite(r.get(metric))]
    # largest files-ratio first; ties: best metric first, so the tie's loser is dominated
    valid.sort(key=lambda r: (-r["file_ratio"], -r[metric] if higher else r[metric]))
    front: list[Row] = []
    best = -math.inf if higher else math.inf
    for row in valid:
        value = row[metric]
        if (value > best) if higher else (value < best):
            front.append(row)
            best = value
    return front[::-1]


def frontiers(rows: Sequence[Row], metric: str = "accuracy") -> dict[str, list[Row]]:
    """{method: its Pareto front over all objectives and settings}."""
    methods = sorted({r["method"] for r in rows}, key=_method_order)
    return {m: pareto_front([r for r in rows if r["method"] == m], metric) for m in methods}


def best_at_ratio(front: Sequence[Row], ratio: float, metric: str = "accuracy") -> Row | None:
    """The best row of a front whose file ratio is at least ``ratio`` (None if none is)."""
    higher = METRICS[metric]
    fits = [r for r in front if r["file_ratio"] >= ratio]
    if not fits:
        return None
    return max(fits, key=lambda r: r[metric] if higher else -r[metric])


def default_targets(rows: Sequence[Row]) -> list[float]:
    """Powers of two between the smallest and largest file ratio of the rows."""
    ratios = [r["file_ratio"] for r in rows if _finite(r.get("file_ratio"))
              and r["file_ratio"] > 0]
    if not ratios:
        return []
    low = max(0, math.floor(math.log2(min(ratios))))
    high = math.floor(math.log2(max(ratios)))
    return [float(2 ** e) for e in range(low, high + 1)]


def equal_size_table(rows: Sequence[Row], targets: Sequence[float] | None = None,
                     metric: str = "accuracy") -> list[str]:
    """Markdown: for each target ratio R, each method's best ``metric`` with file ratio ≥ R."""
    fronts = frontiers(rows, metric)
    targets = list(targets) if targets is not None else default_targets(rows)
    methods = list(fronts)
    lines = ["| file ratio ≥ | " + " | ".join(methods) + " |",
             "|---|" + "---|" * len(methods)]
    for target in targets:
        cells = []
        for method in methods:
            row = best_at_ratio(fronts[method], target, metric)
            cells.append("-" if row is None else
                         f"{_format(row[metric], metric)} ({row['objective']}, "
                         f"{row['setting']}, {row['file_ratio']:.1f}×)")
        lines.append(f"| {target:g} | " + " | ".join(cells) + " |")
    return lines


def equal_size_tables(rows: Sequence[Row]) -> list[str]:
    """Markdown lines: the accuracy table, then the KL table, each with its caption."""
    return ["Best test accuracy of each method (over objectives and settings) with a file at "
            "least R times smaller than fp32:", "", *equal_size_table(rows), "",
            "Lowest KL(compressed ‖ original) at the same sizes:", "",
            *equal_size_table(rows, metric="kl"), ""]


def plot_frontier(rows: Sequence[Row], path: str | Path, title: str = "",
                  reference: dict[str, Any] | None = None) -> Path:
    """Accuracy and KL against file ratio: every run as a dot, each method's front as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rdcompress.plots import ratio_axis

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, metric in zip(axes, ("accuracy", "kl"), strict=True):
        fronts = frontiers(rows, metric)
        labels = sorted({_label(m) for m in fronts} - {""})
        for method, front in fronts.items():
            color = method_style(method).get("color")
            label = _label(method)  # one dash style per compared sweep; "-" for unlabelled
            dashes = ("--", "-.", ":", "-")[labels.index(label) % 4] if label else "-"
            points = [r for r in rows if r["method"] == method
                      and _finite(r.get("file_ratio")) and _finite(r.get(metric))]
            ax.scatter([r["file_ratio"] for r in points],
                       [_floor(r[metric], metric) for r in points], s=10, alpha=0.3,
                       color=color)
            ax.plot([r["file_ratio"] for r in front], [_floor(r[metric], metric) for r in front],
                    marker="o", color=color, ls=dashes, label=method)
        if metric == "accuracy" and reference and reference.get("accuracy") is not None:
            ax.axhline(reference["accuracy"], color="k", ls=":", label="original")
        ratio_axis(ax)
        if metric == "kl":
            ax.set_yscale("log")
        ax.set_xlabel("file ratio (fp32 bytes ÷ .rdz bytes, everything counted)")
        ax.set_ylabel("test accuracy" if metric == "accuracy"
                      else "E_x KL(f_compressed || f_original) (nats)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(f"{title}: each method's best run at each file size (dots: every run)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_frontier(rows: Sequence[Row], out_dir: str | Path, title: str = "",
                   reference: dict[str, Any] | None = None) -> list[Path]:
    """``frontier.csv`` (each method's accuracy front) and ``frontier.png`` in ``out_dir``."""
    out = Path(out_dir)
    fronts = [row for front in frontiers(rows, "accuracy").values() for row in front]
    write_rows(fronts, out / "frontier.csv", FRONTIER_FIELDS)
    return [out / "frontier.csv", plot_frontier(rows, out / "frontier.png", title, reference)]


def _base(method: str) -> str:
    """"quantize" of "quantize" and of "LABEL/quantize" (``compare.py`` prefixes methods)."""
    return method.rsplit("/", 1)[-1]


def _label(method: str) -> str:
    return method.rsplit("/", 1)[0] if "/" in method else ""


def _method_order(method: str) -> tuple[int, str, str]:
    order, base = list(names()), _base(method)
    return (order.index(base) if base in order else len(order), base, _label(method))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _floor(value: float, metric: str) -> float:
    return max(value, 1e-8) if metric == "kl" else value  # log axis: an exact copy has KL 0


def _format(value: float, metric: str) -> str:
    return f"{100 * value:.1f}%" if metric in ("accuracy", "agreement") else f"{value:.3g}"
