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


GLOSSARY = """\
## Glossary
- **file ratio**: fp32 bytes of the whole state_dict ÷ bytes of the `.rdz` file, everything
  counted (header, manifest, codebooks, raw tensors) — the honest compression ratio.
- **paper_ratio**: the papers' own figure: the kept fraction for pruning, Huffman bits ÷ 32 for
  quantization (the formula of the paper's §5.3), the fraction of numbers kept for low rank.
- **baseline**: importance I = 1, i.e. magnitude pruning / plain k-means; the other objectives
  weight each weight by its importance (fisher, gradient, hessian, gradient+hessian: paper
  Tables 1–2; `loss`: methods scored on the calibration loss itself).
- **kl**: E_x KL(f_compressed(x) ‖ f_original(x)) in nats on the evaluation set, the papers'
  distortion; **agreement**: the fraction of samples on which both models predict the same class.
- Every column of `results.csv` is documented in `sweep.json` ("columns").
"""


def verdict(rows: Sequence[dict[str, Any]], reference: dict[str, Any],
            tolerance_points: float = 1.0) -> list[str]:
    """The smallest file within ``tolerance_points`` of the original's accuracy, overall and per
    method, as Markdown lines."""
    original = reference.get("accuracy")
    if original is None:
        return []
    close = [r for r in rows if r.get("accuracy") is not None
             and 100 * (original - r["accuracy"]) <= tolerance_points]
    if not close:
        return [f"**Verdict:** no compressed model is within {tolerance_points:g} point of the "
                "original's accuracy; try larger settings (more clusters, a larger kept "
                "fraction) or a target (`rdcompress compress --max-accuracy-drop`).", ""]

    def describe(row: dict[str, Any]) -> str:
        kl = "-" if row.get("kl") is None else f"{row['kl']:.3g}"
        return (f"{row['method']} ({row['objective']}, {row['setting']}): "
                f"{row['file_ratio']:.1f}× smaller than fp32, accuracy "
                f"{100 * row['accuracy']:.2f}% ({100 * (row['accuracy'] - original):+.2f} "
                f"points), KL {kl}")

    best = max(close, key=lambda r: r["file_ratio"])
    lines = [f"**Verdict:** the smallest file within {tolerance_points:g} point of the "
             f"original's accuracy is {describe(best)}.", ""]
    methods = sorted({r["method"] for r in rows})
    if len(methods) > 1:
        for method in methods:
            mine = [r for r in close if r["method"] == method]
            lines.append(f"- {describe(max(mine, key=lambda r: r['file_ratio']))}" if mine else
                         f"- {method}: no setting within {tolerance_points:g} point")
        lines.append("")
    return lines


def sample_size_note(reference: dict[str, Any]) -> list[str]:
    n = reference.get("num_samples")
    if not n:
        return []
    return [f"On {n} evaluation samples one sample is {100 / n:.2f} accuracy points: "
            f"differences below about {200 / n:.2f} points are within noise.", ""]


def temperature_hint(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> list[str]:
    """When the magnitude baseline keeps winning at T = 1, say that importance needs a
    temperature (paper App. C.3.1)."""
    if config.get("temperature") != 1.0:
        return []
    contests = wins = 0
    for method in {r["method"] for r in rows}:
        for value in {r["value"] for r in rows if r["method"] == method}:
            group = [r for r in rows if r["method"] == method and r["value"] == value
                     and r.get("accuracy") is not None]
            base = [r for r in group if r["objective"] == "baseline"]
            others = [r["accuracy"] for r in group if r["objective"] not in ("baseline", "loss")]
            if base and others:
                contests += 1
                wins += base[0]["accuracy"] >= max(others)
    if contests == 0 or 2 * wins < contests:
        return []
    return [f"At temperature T = 1 the magnitude baseline matched or beat every importance "
            f"objective at {wins}/{contests} settings. Importance usually needs a softmax "
            "temperature (paper App. C.3.1): try `--temperature 5`, or "
            "`--vary temperature=1,2,3,4,5,6,7,8,9` to choose it.", ""]


def write_summary(rows: Sequence[dict[str, Any]], path: str | Path, config: dict[str, Any],
                  reference: dict[str, Any], dataset: str) -> None:
    lines = [f"# Sweep: {config.get('model')} on {dataset}", "",
             f"Original model: accuracy {_fmt(reference.get('accuracy'))}, cross-entropy "
             f"{_fmt(reference.get('cross_entropy'))} on {reference.get('num_samples')} "
             f"{config.get('eval_split', 'test')} samples.", "",
             *verdict(rows, reference), *sample_size_note(reference),
             *temperature_hint(rows, config)]
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
              + f", `kl-vs-bits.png`{extra}. Data: `sweep.json` (settings, model, documented "
              "columns, rows), `results.csv`, `results.json`.", "", GLOSSARY]
    atomic_write_text(path, "\n".join(lines))
