"""A Markdown summary of a sweep: at each setting, which objective won and by how much."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rdcompress._io import atomic_write_text


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def winners_table(rows: Sequence[dict[str, Any]], method: str, metric: str,
                  lower_is_better: bool) -> list[str]:
    settings = sorted({r["value"] for r in rows if r["method"] == method})
    lines = [f"| setting | best objective | {metric} | baseline | margin vs baseline |",
             "|---|---|---|---|---|"]
    for value in settings:
        group = [r for r in rows if r["method"] == method and r["value"] == value
                 and r.get(metric) is not None]
        if not group:
            continue
        best = min(group, key=lambda r: r[metric] if lower_is_better else -r[metric])
        base = next((r for r in group if r["objective"] == "baseline"), None)
        margin = "-"
        if base is not None:
            diff = best[metric] - base[metric]
            margin = f"{diff:+.4f}"
        lines.append(f"| {best['setting']} | {best['objective']} | {_fmt(best[metric])} | "
                     f"{_fmt(base[metric]) if base else '-'} | {margin} |")
    return lines


def write_summary(rows: Sequence[dict[str, Any]], path: str | Path, config: dict[str, Any],
                  reference: dict[str, Any], dataset: str) -> None:
    lines = [f"# Sweep: {config.get('model')} on {dataset}", "",
             f"Original model: accuracy {_fmt(reference.get('accuracy'))}, cross-entropy "
             f"{_fmt(reference.get('cross_entropy'))} on {reference.get('num_samples')} "
             f"{config.get('eval_split', 'test')} samples.", ""]
    for method in sorted({r["method"] for r in rows}):
        lines += [f"## {method}", ""]
        for metric, lower in (("cross_entropy", True), ("accuracy", False), ("kl", True)):
            lines += [f"### {metric} ({'lower' if lower else 'higher'} is better)", ""]
            lines += winners_table(rows, method, metric, lower) + [""]
        # how often each objective beats the baseline on cross-entropy
        objectives = sorted({r["objective"] for r in rows if r["method"] == method} - {"baseline"})
        base = {r["value"]: r for r in rows
                if r["method"] == method and r["objective"] == "baseline"}
        for objective in objectives:
            mine = [r for r in rows if r["method"] == method and r["objective"] == objective
                    and r["value"] in base]
            wins = sum(r["cross_entropy"] < base[r["value"]]["cross_entropy"] for r in mine)
            acc = sum(r["accuracy"] >= base[r["value"]]["accuracy"] for r in mine)
            lines.append(f"- {objective}: lower cross-entropy than baseline at {wins}/{len(mine)}"
                         f" settings; accuracy at least baseline's at {acc}/{len(mine)}.")
        lines.append("")
    methods = sorted({r["method"] for r in rows})
    extra = ""
    if len(methods) > 1:
        from rdcompress.frontier import equal_size_tables

        lines += ["## At equal file size (`frontier.png`, `frontier.csv`)", "",
                  *equal_size_tables(rows)]
        extra = ", `frontier.png`"
    lines += ["Plots: " + ", ".join(f"`{m}.png`" for m in methods)
              + f", `kl-vs-bits.png`{extra}. Data: `results.csv`, `results.json`.", ""]
    atomic_write_text(path, "\n".join(lines))
