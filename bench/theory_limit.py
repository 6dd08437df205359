"""Theory artifacts: distance to the limit, Figure 6, the Figure-6 curve, golden-rule tables.

    python bench/theory_limit.py --out docs/results/theory            # everything, ~1 min
    python bench/theory_limit.py --out /tmp/t --group-size 8192       # quicker, noisier

Writes limit.csv / limit.json / limit.png, figure6.png, figure6_curve.csv, golden_rules.json.
Not a test: prints the gaps, asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from rdcompress._io import atomic_write, atomic_write_text
from rdcompress.theory.gaussian import ECSQ_HIGH_RATE_GAP_BITS
from rdcompress.theory.golden_rules import (
    compare_argmins,
    pruning_class,
    quantization_class,
    rank_agreement,
    scaled_counterexample,
    score_class,
)
from rdcompress.theory.limit import (
    GroupedGaussianModel,
    LimitConfig,
    run_limit_experiment,
    summarize_gaps,
)
from rdcompress.theory.plots import curve_rows, plot_figure6, plot_limit, write_curve_csv
from rdcompress.theory.waterfilling import LinearRegressionBound


def limit(out: Path, group_size: int) -> None:
    config = LimitConfig(group_size=group_size)
    start = time.perf_counter()
    points = run_limit_experiment(config)
    seconds = time.perf_counter() - start
    model = GroupedGaussianModel(config)
    rows = [dict(p.to_dict(), dim=model.dim) for p in points]
    fields = ["compressor", "setting", "distortion", "dim", "file_bits", "entropy_bits",
              "index_bits", "bound_bits", "gap_file", "gap_index"]
    with atomic_write(out / "limit.csv", "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    summary = summarize_gaps(points)
    atomic_write_text(out / "limit.json", json.dumps(
        {"config": config.to_dict(), "seconds": seconds, "summary": summary, "points": rows},
        indent=1))
    per_weight = np.geomspace(1e-5, 1.0, 300) * model.breakpoints.mean()  # D/m up to D_max/m
    curve = np.array([model.bound_bits_per_weight(d * model.dim) for d in per_weight])
    plot_limit(rows, (per_weight, curve), out / "limit.png", ECSQ_HIGH_RATE_GAP_BITS)
    print(f"distance to the limit: m = {model.dim} weights, {len(points)} files, {seconds:.1f} s")
    print(f"{'compressor':16} {'R̲ bits/w':>10} {'file bits/w':>12} {'gap file':>9} "
          f"{'gap index':>9}")
    for p in points:
        print(f"{p.compressor:16} {p.bound_bits:10.4f} {p.file_bits:12.4f} {p.gap_file:9.4f} "
              f"{p.gap_index:9.4f}")
    print(json.dumps(summary, indent=1))


def figure6(out: Path) -> None:
    plot_figure6(out / "figure6.png")
    bound = LinearRegressionBound([3, 2, 1], [3, 2, 1])
    write_curve_csv(out / "figure6_curve.csv", curve_rows(bound, 200, "bits"))


def golden_rules(out: Path) -> None:
    rng = np.random.default_rng(0)
    m = 8
    w = rng.standard_normal(m)
    sigma_x = np.diag(rng.uniform(0.2, 3.0, m))
    report = {"w": w.tolist(), "sigma_x_diag": np.diag(sigma_x).tolist()}
    pruning = pruning_class(w, sigma_x)
    report["pruning"] = {"rank_agreement": rank_agreement(pruning),
                         "per_kept_count": [c.to_dict() for c in compare_argmins(pruning)]}
    for k in (2, 3):
        quant = quantization_class(w, sigma_x, k)
        report[f"quantization_k{k}"] = {"members": len(quant.mse),
                                        "rank_agreement": rank_agreement(quant),
                                        "argmins": [c.to_dict() for c in compare_argmins(quant)]}
    rows = []
    for kept in range(1, m):
        members = np.flatnonzero(pruning.group == kept)
        best = pruning.w_hat[members[np.argmin(pruning.objective[members])]]
        rows.append(dict(kept=kept, **scaled_counterexample(w, best, sigma_x)))
    report["scaled_pruning_counterexample"] = rows
    two = score_class(np.array([1.0, 0.0]), np.array([[0.0, 0.0], [1.0, 1.05]]), np.zeros(2),
                      np.eye(2))
    report["theorem4_two_member_counterexample"] = {
        "w": [1.0, 0.0], "w_hat": [[0.0, 0.0], [1.0, 1.05]], "objective": two.objective.tolist(),
        "mse": two.mse.tolist(), "residual": two.residual.tolist()}
    report["correlated_sigma_x_pruning"] = _correlated_search()
    atomic_write_text(out / "golden_rules.json", json.dumps(report, indent=1))
    print("golden rules:", json.dumps({k: v for k, v in report.items() if k in (
        "scaled_pruning_counterexample", "correlated_sigma_x_pruning")}, indent=1))


def _correlated_search(trials: int = 200, m: int = 6) -> dict:
    disagree, worst = 0, 1.0
    groups = 0
    for seed in range(trials):
        rng = np.random.default_rng(seed)
        w = rng.standard_normal(m)
        factor = rng.standard_normal((m, m))
        sigma_x = factor @ factor.T / m + 0.05 * np.eye(m)
        for c in compare_argmins(pruning_class(w, sigma_x)):
            groups += 1
            disagree += not c.agree
            worst = max(worst, c.mse_at_objective_argmin / max(c.min_mse, 1e-300))
    return {"trials": trials, "m": m, "kept_counts_checked": groups,
            "objective_argmin_not_mse_optimal": disagree, "worst_mse_ratio": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/results/theory"))
    parser.add_argument("--group-size", type=int, default=65536)
    parser.add_argument("--only", choices=("limit", "figure6", "golden"), default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only in (None, "figure6"):
        figure6(args.out)
    if args.only in (None, "golden"):
        golden_rules(args.out)
    if args.only in (None, "limit"):
        limit(args.out, args.group_size)


if __name__ == "__main__":
    main()
