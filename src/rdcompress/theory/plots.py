"""Plots of the theory (matplotlib, Agg): the R̲(D) curve with its kinks, and Figure 6.

Every plot is drawn from arrays that are also written as CSV/JSON beside it (see
``write_curve_csv``), so a figure can be redrawn without recomputing.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from rdcompress._io import atomic_write  # noqa: E402
from rdcompress.results import write_rows  # noqa: E402
from rdcompress.theory.waterfilling import LinearRegressionBound  # noqa: E402

CURVE_COLUMNS = ("distortion", "rate", "rate_per_weight", "mu", "active", "kink")


def curve_rows(bound: LinearRegressionBound, num_points: int, units: str) -> list[dict]:
    """One dict per point of the curve (kinks flagged), ready for a table or a CSV."""
    distortions, _ = bound.curve(num_points, units)
    kink_d = {k.distortion for k in bound.kinks(units)}
    rows = []
    for distortion in distortions:
        solution = bound.levels(float(distortion), units)
        rows.append({"distortion": solution.distortion, "rate": solution.rate,
                     "rate_per_weight": solution.rate_per_weight, "mu": solution.mu,
                     "active": int(solution.active.sum()),
                     "kink": int(float(distortion) in kink_d)})
    return rows


def write_curve_csv(path: str | os.PathLike[str], rows: list[dict]) -> None:
    write_rows(rows, path, CURVE_COLUMNS)


def plot_bound_curve(bound: LinearRegressionBound, path: str | os.PathLike[str],
                     num_points: int = 200, units: str = "bits", title: str | None = None) -> None:
    """R̲(D) (total, left axis; per weight, right axis) with the kinks as red dots."""
    distortions, rates = bound.curve(num_points, units)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(distortions, rates, color="tab:blue", label="R̲(D), Theorem 2")
    kinks = bound.kinks(units)
    if kinks:
        ax.plot([k.distortion for k in kinks], [k.rate for k in kinks], "o", color="red",
                label="a rectangle becomes full")
    ax.set_xlabel("distortion D = E (w − ŵ)ᵀ Σ_X (w − ŵ)")
    ax.set_ylabel(f"rate ({units}, whole model)")
    right = ax.secondary_yaxis("right", functions=(lambda r: r / bound.dim,
                                                   lambda r: r * bound.dim))
    right.set_ylabel(f"rate ({units} per weight)")
    ax.set_title(title or f"Weighted water-filling bound, m = {bound.dim}"
                 + ("" if bound.is_tight else " (correlated Σ_W: not tight)"))
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, path)


def plot_figure6(path: str | os.PathLike[str], distortions: tuple[float, float, float] = (
        1.5, 6.0, 11.5)) -> None:
    """Figure 6 of the paper: Σ_W = Σ_X = diag[3, 2, 1], three water levels and R̲(D)."""
    variances = np.array([3.0, 2.0, 1.0])
    lambdas = np.array([3.0, 2.0, 1.0])
    bound = LinearRegressionBound(variances, lambdas)
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), gridspec_kw={"width_ratios": [1, 1, 1, 1.5]})
    for ax, label, distortion in zip(axes[:3], "abc", distortions, strict=True):
        solution = bound.levels(distortion)
        left = 0.0
        for width, height, level in zip(lambdas, variances, solution.levels, strict=True):
            ax.add_patch(Rectangle((left, 0), width, level, color="tab:blue", alpha=0.5))
            ax.add_patch(Rectangle((left, 0), width, height, fill=False, lw=1.5))
            ax.text(left + width / 2, level, f"D={level:.2f}", ha="center", va="bottom",
                    fontsize=8)
            left += width + 0.3
        ax.set_xlim(-0.2, left)
        ax.set_ylim(0, 3.4)
        ax.set_xlabel("width λ_i (Σ_X)")
        ax.set_ylabel("height E W_i² (Σ_W)")
        ax.set_title(f"({label}) D = {distortion:g}, water volume μ = {solution.mu:.2f}",
                     fontsize=9)
    curve_d, curve_r = bound.curve(300)
    axes[3].plot(curve_d, curve_r, color="tab:blue")
    kinks = bound.kinks()
    axes[3].plot([k.distortion for k in kinks], [k.rate for k in kinks], "o", color="red")
    for label, distortion in zip("abc", distortions, strict=True):
        axes[3].annotate(f"({label})", (distortion, bound.rate(distortion)),
                         textcoords="offset points", xytext=(4, 6))
    axes[3].set_xlabel("D")
    axes[3].set_ylabel("R̲(D) (bits)")
    axes[3].set_title("(d) rate-distortion bound", fontsize=9)
    axes[3].grid(alpha=0.3)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str | os.PathLike[str]) -> None:
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=120)
    plt.close(fig)


LIMIT_STYLES = {"ecsq-waterfill": ("o-", "tab:green"), "ecsq-same-step": ("s--", "tab:olive"),
                "kmeans": ("^-", "tab:purple"), "prune": ("v-", "tab:red")}


def plot_limit(rows: list[dict], bound_curve: tuple[np.ndarray, np.ndarray],
               path: str | os.PathLike[str], gap_bits: float) -> None:
    """Left: file rate vs distortion per weight with R̲(D) and R̲ + gap; right: the gaps.

    rows: ``LimitPoint.to_dict()`` rows (plus ``dim``); bound_curve: (D per weight, R̲ bits
    per weight) arrays.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    curve_d, curve_r = bound_curve
    left.plot(curve_d, curve_r, color="black", lw=1.5, label="R̲(D), Theorem 2")
    coded = curve_r > 0
    left.plot(curve_d[coded], curve_r[coded] + gap_bits, color="gray", ls=":",
              label=f"R̲(D) + {gap_bits:.4f} (high-rate ECSQ)")
    for name in dict.fromkeys(r["compressor"] for r in rows):
        style, color = LIMIT_STYLES.get(name, (".-", None))
        sub = sorted((r for r in rows if r["compressor"] == name), key=lambda r: r["distortion"])
        d = np.array([r["distortion"] / r["dim"] for r in sub])
        left.plot(d, [r["file_bits"] for r in sub], style, color=color, ms=4, label=name)
        right.plot([r["bound_bits"] for r in sub], [r["gap_file"] for r in sub], style,
                   color=color, ms=4, label=f"{name} (file)")
        right.plot([r["bound_bits"] for r in sub], [r["gap_index"] for r in sub], style,
                   color=color, ms=2, alpha=0.4)
    left.set_xscale("log")
    left.set_ylim(0, max(curve_r.max() + 1.5, 2))
    left.set_xlabel("distortion per weight  Σ λ_i (w_i − ŵ_i)² / m")
    left.set_ylabel("rate (bits per weight; compressors: file size)")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize=8)
    right.axhline(gap_bits, color="gray", ls=":", label=f"½ log₂(πe/6) = {gap_bits:.4f}")
    right.set_yscale("log")
    right.set_xlabel("R̲(D) at the measured distortion (bits per weight)")
    right.set_ylabel("gap to R̲ (bits per weight); faint: index streams only")
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize=8)
    fig.suptitle("Real compressors of a Gaussian linear model vs the rate-distortion bound")
    fig.tight_layout()
    _save(fig, path)
