"""Allocation to a target vs one setting for every layer (and NNCodec), on real models.

For one model: the per-layer menus are computed once per quantizer (``compress(...,
cache=...)``) and every target ratio is then one allocation, one real ``.rdz`` file, loaded back
and evaluated on the test set against the original; the uniform baselines (k-means codebooks of
k centroids per layer, exact DP, the same importance) go through the same file and evaluation.
NNCodec's curves, when a ``bench/vs_nncodec.py`` run's ``codec.csv`` is given, are drawn on the
same axes (same weights, same test images). Writes into --out:

- ``results.csv`` / ``results.json``: one row per file (curve, setting, bytes, ratio, accuracy,
  measured KL, predicted KL, seconds);
- ``allocation.json``: the per-layer allocation of every allocated file;
- ``accuracy.png`` / ``kl.png``: accuracy and KL vs file ratio, every curve;
- ``bits.png``: bits per weight per layer at a few budgets; ``predicted.png``: predicted vs
  measured KL (the Fisher objective's ½ Σ I δ²), with the identity line;
- ``summary.md``: largest file ratio within 0.1 / 0.5 / 1.0 points of the original per curve,
  the rank correlation of predicted vs measured KL, and the timings.

    python bench/allocation.py --model runs/mnist-mlp.safetensors \\
        --importance runs/mnist-mlp.fisher.safetensors --data-dir ../shared/data \\
        --nncodec runs/vs-nncodec-mnist/codec.csv -o docs/results/allocation/mnist-mlp

Never asserts; timings are wall-clock seconds on whatever machine runs it.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch

import rdcompress
from rdcompress.compress import AllocateConfig, QuantizeConfig, compress
from rdcompress.data import load_dataset
from rdcompress.evaluate import evaluate
from rdcompress.importance import Importance, compute_importance
from rdcompress.models import load_model
from rdcompress.pipeline import make_loader

TOLERANCES = (0.1, 0.5, 1.0)


def evenly(dataset, limit):
    if limit is None or limit >= len(dataset):
        return dataset
    indices = np.unique(np.linspace(0, len(dataset) - 1, limit).round().astype(np.int64))
    return dataset.subset(indices, dataset.split)


def measure(path: Path, model, test, reference_accuracy: float) -> dict:
    loaded = rdcompress.load(path, model=model)
    metrics = evaluate(loaded, test, reference=model)
    return {"file_bytes": path.stat().st_size, "accuracy": metrics.accuracy,
            "kl": metrics.kl, "drop_points": 100 * (reference_accuracy - metrics.accuracy)}


def best_ratios(rows: list[dict], curve: str) -> list[float | None]:
    out = []
    for tol in TOLERANCES:
        ok = [r["ratio"] for r in rows if r["curve"] == curve and r["drop_points"] <= tol + 1e-9]
        out.append(max(ok) if ok else None)
    return out


def nncodec_rows(path: str, model_name: str, fp32: int, accuracy: float) -> list[dict]:
    rows = []
    with open(path) as handle:
        for row in csv.DictReader(handle):
            if row["model"] != model_name or not row["curve"].startswith("nncodec"):
                continue
            acc = float(row["accuracy"])
            rows.append({"curve": row["curve"], "setting": row["setting"],
                         "file_bytes": int(row["file_bytes"]), "ratio": fp32 / int(row[
                             "file_bytes"]), "accuracy": acc, "kl": None,
                         "drop_points": 100 * (accuracy - acc), "predicted_kl": None,
                         "seconds": float(row["encode_s"])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a .safetensors with sidecar, or a zoo "
                        "name with --weights")
    parser.add_argument("--weights")
    parser.add_argument("--data", help="dataset (default: the model's)")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--importance", help="importance file (default: fisher on "
                        "--calibration-samples training samples)")
    parser.add_argument("--ratios", default="10,15,20,25,30,35,40,50")
    parser.add_argument("--quantizers", default="round,gptq")
    parser.add_argument("--clusters", default="4,6,8,12,16,32")
    parser.add_argument("--calibration-samples", type=int, default=4096)
    parser.add_argument("--eval-limit", type=int, help="test samples, evenly spaced")
    parser.add_argument("--coder", default="ans", help="coder of the uniform baselines' files")
    parser.add_argument("--coders", help="coders of the allocated files, comma separated "
                        "(default: --coder); each is one curve per quantizer, its menus "
                        "costed in that coder's bytes")
    parser.add_argument("--steps-per-octave", type=int, default=2)
    parser.add_argument("--max-relative-distortion", type=float, default=0.5)
    parser.add_argument("--nncodec", help="codec.csv of a bench/vs_nncodec.py run")
    parser.add_argument("--nncodec-name", help="its model name (default: the zoo name)")
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--files", help="where the .rdz files go (default: runs/allocation-"
                        "files/<out's name>, kept out of the results folder)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = Path(args.files or f"runs/allocation-files/{out.name}")
    files.mkdir(parents=True, exist_ok=True)

    loaded = load_model(args.model, weights=args.weights)
    model = loaded.module.eval()
    dataset = args.data or loaded.dataset
    test_set = evenly(load_dataset(dataset, split="test", data_dir=args.data_dir),
                      args.eval_limit)
    test = make_loader(test_set, loaded.preprocessing, 1000)
    train = evenly(load_dataset(dataset, split="train", data_dir=args.data_dir),
                   args.calibration_samples)
    calibration = make_loader(train, loaded.preprocessing, 256)
    reference = evaluate(model, test)
    accuracy = float(reference.accuracy)
    fp32 = sum(t.numel() * 4 for t in model.state_dict().values() if t.is_floating_point())
    if args.importance:
        importance = Importance.load(args.importance, model)
    else:
        importance = compute_importance(model, calibration, "fisher")
    start = time.perf_counter()
    evaluate(model, test)
    forward_s = time.perf_counter() - start
    print(f"{args.model}: {accuracy:.4f} on {len(test_set)} test samples; fp32 {fp32} B; "
          f"one pass over the test set {forward_s:.2f} s", flush=True)

    rows: list[dict] = []
    allocations: dict[str, dict] = {}
    for k in [int(x) for x in args.clusters.split(",") if x]:
        start = time.perf_counter()
        result = compress(model, QuantizeConfig(clusters=k, algorithm="optimal"), importance,
                          model_spec=loaded.spec, coder=args.coder)
        seconds = time.perf_counter() - start
        path = files / f"uniform-k{k}.rdz"
        result.save(path)
        row = {"curve": "one k for every layer", "setting": f"k={k}", **measure(
            path, model, test, accuracy), "predicted_kl": 0.5 * result.distortion
            if importance.objective == "fisher" else None, "seconds": seconds}
        row["ratio"] = fp32 / row["file_bytes"]
        rows.append(row)
        print(f"  uniform k={k}: {row['ratio']:.2f}x acc {row['accuracy']:.4f}", flush=True)
    coders = [c for c in (args.coders or args.coder).split(",") if c]
    for quantizer, coder in [(q, c) for q in args.quantizers.split(",") if q for c in coders]:
        cache: dict = {}
        label = quantizer if coder == "ans" else f"{quantizer}, {coder}"
        for ratio in [float(x) for x in args.ratios.split(",") if x]:
            start = time.perf_counter()
            config = AllocateConfig(target_ratio=ratio, quantizer=quantizer,
                                    steps_per_octave=args.steps_per_octave,
                                    max_relative_distortion=args.max_relative_distortion)
            try:
                result = compress(model, config, importance, model_spec=loaded.spec,
                                  coder=coder, calibration=calibration, cache=cache)
            except rdcompress.errors.ConfigError as error:
                print(f"  allocate {label} {ratio}x: {error}")
                continue
            seconds = time.perf_counter() - start
            path = files / f"allocate-{label.replace(', ', '-')}-{ratio:g}x.rdz"
            result.save(path)
            row = {"curve": f"allocate ({label})", "setting": f"ratio>={ratio:g}",
                   **measure(path, model, test, accuracy),
                   "predicted_kl": result.report["predicted_kl"], "seconds": seconds}
            row["ratio"] = fp32 / row["file_bytes"]
            rows.append(row)
            allocations[path.name] = result.report
            print(f"  allocate {label} {ratio:g}x: {row['ratio']:.2f}x acc "
                  f"{row['accuracy']:.4f} kl {row['kl']:.4g} pred {row['predicted_kl']} "
                  f"{seconds:.1f}s", flush=True)
    if args.nncodec and Path(args.nncodec).exists():
        name = args.nncodec_name or (loaded.spec or {}).get("zoo", "")
        rows += nncodec_rows(args.nncodec, name, fp32, accuracy)
    write(out, rows, allocations, accuracy, forward_s, args)


def write(out: Path, rows: list[dict], allocations: dict, accuracy: float, forward_s: float,
          args) -> None:
    columns = ["curve", "setting", "file_bytes", "ratio", "accuracy", "drop_points", "kl",
               "predicted_kl", "seconds"]
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows({c: r.get(c) for c in columns} for r in rows)
    (out / "results.json").write_text(json.dumps({"accuracy": accuracy, "rows": rows,
                                                  "forward_s": forward_s,
                                                  "settings": vars(args)}, indent=1))
    (out / "allocation.json").write_text(json.dumps(allocations, indent=1))
    curves = list(dict.fromkeys(r["curve"] for r in rows))
    lines = [f"# Allocation vs one setting per layer: {args.model}", "",
             f"Original accuracy {100 * accuracy:.2f}% on the test set; file ratio = fp32 "
             "bytes of the state_dict / file bytes, everything counted.", "",
             "| curve | within 0.1 pt | within 0.5 pt | within 1.0 pt |", "|---|---|---|---|"]
    for curve in curves:
        cells = [f"{r:.1f}x" if r else "-" for r in best_ratios(rows, curve)]
        lines.append(f"| {curve} | " + " | ".join(cells) + " |")
    pairs = [(r["predicted_kl"], r["kl"]) for r in rows
             if r["curve"].startswith("allocate") and r["predicted_kl"] and r["kl"]]
    if len(pairs) >= 3:
        from scipy.stats import spearmanr

        rho = spearmanr([p for p, _ in pairs], [m for _, m in pairs]).statistic
        ratios = [m / p for p, m in pairs]
        lines += ["", f"Predicted (½ Σ I δ², Fisher) vs measured KL over {len(pairs)} allocated "
                  f"files: Spearman rank correlation {rho:.3f}; measured / predicted from "
                  f"{min(ratios):.2f} to {max(ratios):.2f}."]
    times = [r["seconds"] for r in rows if r["curve"].startswith("allocate")]
    uniform = [r["seconds"] for r in rows if r["curve"] == "one k for every layer"]
    if times and uniform:
        lines += ["", f"Time: allocation {min(times):.1f}-{max(times):.1f} s per file (the "
                  f"first of each quantizer builds the menus), one uniform compression "
                  f"{min(uniform):.1f}-{max(uniform):.1f} s; one pass over the test set "
                  f"{forward_s:.2f} s."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(out, rows, allocations, accuracy)


def plot(out: Path, rows: list[dict], allocations: dict, accuracy: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = list(dict.fromkeys(r["curve"] for r in rows))
    for key, name, label in (("accuracy", "accuracy.png", "test accuracy"),
                             ("kl", "kl.png", "KL(compressed || original), nats")):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for index, curve in enumerate(curves):
            pts = sorted((r["ratio"], r[key]) for r in rows if r["curve"] == curve
                         and r[key] is not None)
            # more curves than colours: NNCodec and the second round of colours dashed
            style = "--" if curve.startswith("nncodec") or index >= 10 else "-"
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", ms=3, ls=style, label=curve)
        if key == "accuracy":
            for tol in TOLERANCES:
                ax.axhline(accuracy - tol / 100, color="grey", lw=0.5, ls=":")
            low = min(r["accuracy"] for r in rows)
            ax.set_ylim(max(low, accuracy - 0.05), accuracy + 0.005)
        else:
            ax.set_yscale("log")
        ax.set_xlabel("file ratio (fp32 bytes / .rdz bytes)")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=120)
        plt.close(fig)
    if allocations:
        names = sorted(allocations)
        picks = [names[i] for i in np.unique(np.linspace(0, len(names) - 1, 4).round().astype(
            int))]
        fig, ax = plt.subplots(figsize=(8, 4.5))
        width = 0.8 / len(picks)
        for i, name in enumerate(picks):
            layers = allocations[name]["layers"]
            ax.bar(np.arange(len(layers)) + i * width,
                   [row["bits_per_weight"] for row in layers], width,
                   label=f"{name} ({allocations[name]['ratio']:.1f}x)")
        ax.set_xticks(np.arange(len(layers)) + 0.4, [row["layer"] for row in layers],
                      rotation=90, fontsize=6)
        ax.set_ylabel("bits per weight")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "bits.png", dpi=120)
        plt.close(fig)
    pairs = [(r["predicted_kl"], r["kl"], r["curve"]) for r in rows
             if r["predicted_kl"] and r["kl"]]
    if pairs:
        fig, ax = plt.subplots(figsize=(5, 5))
        for curve in dict.fromkeys(c for _, _, c in pairs):
            ax.scatter([p for p, _, c in pairs if c == curve],
                       [m for _, m, c in pairs if c == curve], s=12, label=curve)
        lims = [min(min(p, m) for p, m, _ in pairs), max(max(p, m) for p, m, _ in pairs)]
        ax.plot(lims, lims, color="grey", lw=0.8, label="identity")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("predicted KL: ½ Σ I (w − ŵ)² (Fisher), nats")
        ax.set_ylabel("measured KL on the test set, nats")
        ax.legend(fontsize=7)
        fig.text(0.01, 0.01, "quadratic surrogate: diagonal Fisher, second order in δ",
                 fontsize=6)
        fig.tight_layout()
        fig.savefig(out / "predicted.png", dpi=120)
        plt.close(fig)


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    main()
