"""Low rank vs pruning vs quantization at equal FILE size, zero-shot (no fine-tuning).

    nice -n 5 python bench/lowrank.py --model runs/mnist-mlp.safetensors \
        --data-dir ../shared/data --out docs/results/lowrank/mnist

Every point is a real .rdz file (its byte count is the rate): low rank with each metric
(svd, fwsvd, weighted, whiten; float16 factors, ranks by the objective at a global budget),
low rank with quantized factors, importance-weighted pruning, and quantization. All use the
same Fisher importance (calibration: training samples). Writes results.csv and a PNG plot.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import json
import tempfile
import time
from pathlib import Path

import torch

from rdcompress.compress import PruneConfig, QuantizeConfig, compress, load
from rdcompress.compress.lowrank import LowRankConfig
from rdcompress.data import load_dataset
from rdcompress.evaluate import classification_metrics, collect_outputs
from rdcompress.importance import Importance, compute_importance
from rdcompress.lowrank import collect_input_moments
from rdcompress.models import load_model
from rdcompress.pipeline import make_loader, tensor_loader

FIELDS = ["family", "setting", "file_bytes", "file_ratio", "accuracy", "cross_entropy", "kl",
          "agreement", "ranks", "seconds"]


def _grid(ratios: list[float], quick: bool) -> list[tuple[str, str, object]]:
    grid: list[tuple[str, str, object]] = []
    metrics = ("svd", "fwsvd", "whiten") if quick else ("svd", "fwsvd", "weighted", "whiten")
    for metric in metrics:
        for ratio in ratios:
            grid.append((f"lowrank-{metric}", f"ratio={ratio:g}", LowRankConfig(
                metric=metric, ratio=ratio, allocation="global", storage="float16", iters=5)))
    for ratio in ratios:
        grid.append(("lowrank-svd-uniform", f"ratio={ratio:g}", LowRankConfig(
            metric="svd", ratio=ratio, storage="float16")))
    for ratio in (0.1, 0.2, 0.4):
        for bits in (4, 6):
            grid.append(("lowrank-whiten+q", f"ratio={ratio:g},bits={bits}", LowRankConfig(
                metric="whiten", ratio=ratio, allocation="global", storage="quantized",
                bits=bits)))
    for kept in (0.02, 0.05, 0.1, 0.2):
        grid.append(("prune", f"kept={kept:g}", PruneConfig(kept_fraction=kept)))
        grid.append(("prune-global", f"kept={kept:g}", PruneConfig(kept_fraction=kept,
                                                                    scope="global")))
    for k in (2, 3, 4, 8):
        grid.append(("quantize", f"k={k}", QuantizeConfig(clusters=k)))
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/mnist-mlp.safetensors")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--data", default=None)
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="docs/results/lowrank/mnist")
    parser.add_argument("--calibration", type=int, default=1024)
    parser.add_argument("--eval-limit", type=int, default=None)
    parser.add_argument("--ratios", default="0.03,0.06,0.1,0.2,0.4")
    parser.add_argument("--quick", action="store_true", help="skip the iterative metric")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the benchmark machine is shared: 2 threads oversubscribe it
    torch.manual_seed(0)
    start = time.perf_counter()
    loaded = load_model(args.model, weights=args.weights)
    dataset = args.data or loaded.dataset
    model = loaded.module
    test = make_loader(load_dataset(dataset, "test", data_dir=args.data_dir),
                       loaded.preprocessing, 500, limit=args.eval_limit)
    reference, labels = collect_outputs(model, test)
    train = make_loader(load_dataset(dataset, "train", data_dir=args.data_dir),
                        loaded.preprocessing, 128, shuffle=True, seed=0)
    inputs, targets = [], []
    for x, y in train:
        inputs.append(x)
        targets.append(y)
        if sum(len(t) for t in targets) >= args.calibration:
            break
    calibration = tensor_loader(torch.cat(inputs)[:args.calibration],
                                torch.cat(targets)[:args.calibration], batch_size=128)
    importance: Importance = compute_importance(model, calibration, "fisher")
    layers = [n for n, p in model.named_parameters() if p.ndim in (2, 4)]
    stats = collect_input_moments(model, calibration, names=layers).layer_statistics()
    prep_seconds = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"family": "original", "setting": "", "file_bytes": None, "file_ratio": 1.0,
             **_metrics(reference, labels, reference), "ranks": "", "seconds": 0.0}]
    ratios = [float(r) for r in args.ratios.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for family, setting, config in _grid(ratios, args.quick):
            t0 = time.perf_counter()
            compressed = compress(model, config, importance, model_spec=loaded.spec,
                                  layers=layers, layer_statistics=stats)
            path = Path(tmp) / "m.rdz"
            summary = compressed.save(path)
            net = load(path)
            logits, _ = collect_outputs(net, test)
            ranks = [compressed.layers[n].rank for n in layers]
            row = {"family": family, "setting": setting, "file_bytes": summary.file_bytes,
                   "file_ratio": compressed.manifest["original_bytes"] / summary.file_bytes,
                   **_metrics(logits, labels, reference),
                   "ranks": " ".join("dense" if r is None else str(r) for r in ranks)
                   if family.startswith("lowrank") else "",
                   "seconds": round(time.perf_counter() - t0, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "run.json").write_text(json.dumps({
        "args": vars(args), "dataset": dataset, "prep_seconds": round(prep_seconds, 1),
        "total_seconds": round(time.perf_counter() - start, 1), "layers": layers,
        "importance": "fisher", "calibration_samples": args.calibration}, indent=2) + "\n")
    plot(rows, out, title=f"{Path(args.model).stem} on {dataset}, zero-shot")


def _metrics(logits, labels, reference) -> dict:
    metrics = classification_metrics(logits, labels, reference)
    return {"accuracy": metrics.accuracy, "cross_entropy": metrics.cross_entropy,
            "kl": metrics.kl, "agreement": metrics.agreement}


def plot(rows: list[dict], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    families = sorted({r["family"] for r in rows if r["family"] != "original"})
    original = next(r for r in rows if r["family"] == "original")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for family in families:
        points = sorted((float(r["file_ratio"]), r) for r in rows if r["family"] == family)
        ratios = [p[0] for p in points]
        axes[0].plot(ratios, [100 * float(p[1]["accuracy"]) for p in points], "o-",
                     label=family)
        axes[1].plot(ratios, [max(float(p[1]["kl"]), 1e-6) for p in points], "o-", label=family)
    axes[0].axhline(100 * float(original["accuracy"]), color="k", ls=":", label="original")
    axes[0].set(xscale="log", xlabel="file compression ratio (fp32 bytes / .rdz bytes)",
                ylabel="test accuracy (%)", title=title, ylim=(0, 100))
    axes[1].set(xscale="log", yscale="log", xlabel="file compression ratio",
                ylabel="KL(compressed || original), nats", title="distortion")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy-kl-vs-file-ratio.png", dpi=110)


if __name__ == "__main__":
    main()
