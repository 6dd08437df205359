"""Plots made from result rows (so any figure can be redrawn from results.json alone).

The paper's form (Figures 2–5): test accuracy and test cross-entropy against the file's
compression ratio (every method on the same axis, so that plots compare), one curve per
objective, one figure per method; plus KL against bits per
weight — the rate–distortion curve measured on the model's outputs with the file's real rate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rdcompress.compress.registry import style as method_style  # noqa: E402

STYLE = {"baseline": ("k", "o"), "fisher": ("tab:blue", "s"), "gradient": ("tab:orange", "^"),
         "hessian": ("tab:green", "v"), "gradient+hessian": ("tab:red", "D")}


def _curves(rows: Sequence[dict[str, Any]], method: str, x: str, y: str):
    by_objective: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        if row["method"] == method and row.get(x) is not None and row.get(y) is not None:
            by_objective.setdefault(row["objective"], []).append((row[x], row[y]))
    return {k: sorted(v) for k, v in by_objective.items()}


def _merged(curves: dict[str, list]) -> dict[tuple[str, ...], list]:
    """Objectives whose curves are identical drawn once, labelled together ("fisher = hessian":
    on ReLU nets the Fisher and the Hessian diagonals coincide), so none hides another."""
    groups: dict[tuple, list[str]] = {}
    for objective, points in curves.items():
        groups.setdefault(tuple(points), []).append(objective)
    return {tuple(names): list(points) for points, names in groups.items()}


def _tick(value: float, _: int) -> str:
    return f"{value:g}"


def _minor_tick(value: float, _: int) -> str:
    """Label 2, 3 and 5 of each decade: enough to read a ratio, not so many they overlap."""
    leading = round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0
    return f"{value:g}" if leading in (2, 3, 5) else ""


def ratio_axis(ax: Any) -> None:
    """``ax``'s x axis: compression ratios, log scale labelled 2, 3, 5, 10, 20 ... (not 10¹,
    2×10¹)."""
    import matplotlib.ticker

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_tick))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(_minor_tick))


def plot_sweep(rows: Sequence[dict[str, Any]], out_dir: str | Path, title: str = "",
               reference: dict[str, Any] | None = None) -> list[Path]:
    """Write ``{method}.png`` (accuracy and cross-entropy vs file ratio) and
    ``kl-vs-bits.png``."""
    out = Path(out_dir)
    written = []
    methods = sorted({row["method"] for row in rows})
    for method in methods:
        fig, axes = plt.subplots(2, 1, figsize=(6, 7), sharex=True)
        for ax, metric, label in ((axes[0], "accuracy", "test accuracy"),
                                  (axes[1], "cross_entropy", "test cross-entropy (nats)")):
            for names, points in _merged(_curves(rows, method, "file_ratio", metric)).items():
                color, marker = STYLE.get(names[0], (None, "x"))
                ax.plot(*zip(*points, strict=True), marker=marker, color=color,
                        label=" = ".join(names) + (" (identical)" if len(names) > 1 else ""))
            if reference and reference.get(metric) is not None:
                ax.axhline(reference[metric], color="gray", ls=":", label="original")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
        axes[1].set_yscale("log")
        ratio_axis(axes[0])
        axes[1].set_xlabel("compression ratio (fp32 bytes ÷ .rdz file bytes)")
        axes[0].legend(fontsize=8)
        axes[0].set_title(f"{title}: {method}")
        fig.tight_layout()
        path = out / f"{method}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method in methods:  # colour and dashes: the method; marker: the objective
        style = method_style(method)
        for names, points in _merged(_curves(rows, method, "bits_per_weight", "kl")).items():
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, [max(v, 1e-8) for v in ys], ls=style.get("linestyle", "-"),
                    marker=STYLE.get(names[0], (None, "x"))[1], color=style.get("color"),
                    label=f"{method} / {' = '.join(names)}")
    ax.set_yscale("log")
    ax.set_xlabel("bits per weight (file, everything counted)")
    ax.set_ylabel("E_x KL(f_compressed || f_original)")
    ax.set_title(f"{title}: distortion vs rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2, handlelength=4)
    fig.tight_layout()
    path = out / "kl-vs-bits.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def replot(results_json: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Redraw the sweep figures from a results.json."""
    results_json = Path(results_json)
    rows = json.loads(results_json.read_text())
    return plot_sweep(rows, out_dir or results_json.parent)


def plot_vary(rows: Sequence[dict[str, Any]], path: str | Path, parameter: str,
              reference: dict[str, Any] | None = None) -> Path:
    """Accuracy and cross-entropy against the varied hyperparameter (paper Figures 11, 12):
    one line per (method, objective, setting); rows carry the value in ``"varied"``."""
    lines: dict[tuple[str, str, str], list[tuple[float, float, float]]] = {}
    for row in rows:
        key = (row["method"], row["objective"], row["setting"])
        lines.setdefault(key, []).append((row["varied"], row["accuracy"], row["cross_entropy"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    settings = sorted({key[2] for key in lines})
    dashes = ["-", "--", "-.", ":"]
    for key, points in sorted(lines.items()):
        points.sort()
        values, accuracy, loss = zip(*points, strict=True)
        color, marker = STYLE.get(key[1], (None, "x"))  # color: objective; dashes: setting
        style = {"color": color, "marker": marker, "ls": dashes[settings.index(key[2]) % 4],
                 "label": f"{key[0]} {key[1]} {key[2]}"}
        axes[0].plot(values, accuracy, **style)
        axes[1].plot(values, loss, **style)
    for ax, metric, label in ((axes[0], "accuracy", "test accuracy"),
                              (axes[1], "cross_entropy", "test cross-entropy (nats)")):
        if reference and reference.get(metric) is not None:
            ax.axhline(reference[metric], color="gray", ls=":", label="original")
        ax.set_xlabel(parameter)
        positive = sorted({row["varied"] for row in rows if row["varied"] > 0})
        if len(positive) > 1 and positive[-1] / positive[0] >= 100:  # values over decades
            ax.set_xscale("symlog", linthresh=positive[0])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"effect of {parameter}")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
