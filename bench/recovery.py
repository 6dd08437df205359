"""Recovery after compression: accuracy vs file ratio before and after, on real models.

For one model, every compression setting (quantize with k centroids per layer; prune+quantize at
kept fractions) is written to a real ``.rdz``, then recovered with ``rdcompress.recover``:
level 0 alone (BatchNorm re-estimation where the model has BatchNorm, bias correction), and
fine-tuning inside the structure for --epochs epochs with each --losses loss (accuracy measured
on the test split after every epoch). Every recovered file is written, re-read with
``rdcompress.load`` and evaluated from the file, so the ratios and accuracies are the files'.
The references of iso-accuracy: the original (distillation) and the original fine-tuned with
the same budget, loss and data (task loss; every tensor raw, so only the training differs).
Writes into --out:

- ``results.csv`` / ``results.json``: one row per (setting, stage, epoch): bytes, ratio,
  accuracy, agreement and KL with the original, seconds per epoch;
- ``accuracy.png``: accuracy vs file ratio before / level 0 / after each loss, and the
  references;
- ``summary.md``: the largest ratio within 0.1 / 0.5 points of each reference.

Settings ``ipq*`` (--iterative-keeps) follow Deep Compression's order instead of fine-tuning a
prune+quantize file directly: prune, fine-tune the kept weights, quantize the survivors with the
same mask, fine-tune the codebooks (--epochs each; their "compressed" and "level0" rows are the
direct prune+quantize file of the same setting, the "before" of the comparison).

    python bench/recovery.py --model runs/mnist-mlp.safetensors --data-dir ../shared/data \\
        -o docs/results/recovery/mnist-mlp

Never asserts; timings are wall-clock seconds on whatever machine runs it (--threads 2).
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
from rdcompress.codec import RawTensor
from rdcompress.compress import (
    CompressedModel,
    PruneConfig,
    PruneQuantizeConfig,
    QuantizeConfig,
    compress,
)
from rdcompress.data import load_dataset
from rdcompress.evaluate import evaluate
from rdcompress.importance import Importance
from rdcompress.models import load_model
from rdcompress.pipeline import make_loader
from rdcompress.recover import RecoverConfig, recover


def first(dataset, limit: int | None):
    """The first ``limit`` samples (MNIST's files are in no class order)."""
    if limit is None or limit >= len(dataset):
        return dataset
    return dataset.subset(np.arange(limit), dataset.split)


def evenly(dataset, limit: int | None):
    """``limit`` samples evenly spaced over the split (image folders are sorted by class: the
    first N would hold one or two classes)."""
    if limit is None or limit >= len(dataset):
        return dataset
    indices = np.unique(np.linspace(0, len(dataset) - 1, limit).round().astype(np.int64))
    return dataset.subset(indices, dataset.split)


def file_row(path: Path, original_bytes: int, model, test, original) -> dict:
    """Bytes, ratio and metrics of a file, evaluated from the file itself."""
    size = path.stat().st_size
    metrics = evaluate(rdcompress.load(path, model=model), test, original)
    return {"bytes": size, "ratio": original_bytes / size, "accuracy": metrics.accuracy,
            "agreement": metrics.agreement, "kl": metrics.kl}


def settings(args: argparse.Namespace) -> list[tuple[str, object]]:
    points: list[tuple[str, object]] = []
    for k in args.ks:
        points.append((f"q{k}", QuantizeConfig(clusters=k, algorithm=args.algorithm)))
    for keep in args.keeps:
        for k in args.pq_ks:
            points.append((f"pq{keep}-k{k}", PruneQuantizeConfig(
                kept_fraction=keep, clusters=k, algorithm=args.algorithm, scope=args.scope)))
    for keep in args.iterative_keeps:
        for k in args.pq_ks:
            points.append((f"ipq{keep}-k{k}", PruneQuantizeConfig(
                kept_fraction=keep, clusters=k, algorithm=args.algorithm, scope=args.scope)))
    return points


def iterative(original, spec, config: PruneQuantizeConfig, importance, train, test,
              recover_config: RecoverConfig, path: Path):
    """Deep Compression's order: prune, fine-tune the kept weights (masks fixed), then quantize
    the survivors (the same mask: pruned weights are exactly 0 and rank last) and fine-tune the
    codebooks. Each stage gets ``recover_config.epochs`` epochs."""
    pruned = compress(original, PruneConfig(config.kept_fraction, config.scope), importance,
                      model_spec=spec)
    tuned = recover(pruned, train, recover_config, original=original, model=original)
    quantized = compress(tuned.model, config, None, model_spec=spec)
    masks_in = {t.name: t.mask for t in pruned.tensors if getattr(t, "mask", None) is not None}
    for entry in quantized.tensors:
        if entry.name in masks_in and not (entry.mask == masks_in[entry.name]).all():
            raise RuntimeError(f"{entry.name}: the quantization stage changed the mask")
    quantized.save(path)
    return recover(path, train, recover_config, original=original, model=original,
                   eval_data=test)


def raw_copy(model, spec) -> CompressedModel:
    """The uncompressed model as a 'compressed' one whose every tensor is raw."""
    state = model.state_dict()
    tensors = [RawTensor(name, t.detach().clone()) for name, t in state.items()]
    return CompressedModel(tensors=tensors, manifest={"model": spec}, layers={},
                           _state={k: v.detach().clone() for k, v in state.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="trained .safetensors with its sidecar, "
                        "or a zoo name with --weights")
    parser.add_argument("--weights", help="weights of a zoo-name --model")
    parser.add_argument("--data", help="dataset (default: the model's)")
    parser.add_argument("--data-dir")
    parser.add_argument("--importance", help="importance file (default: baseline, I = 1)")
    parser.add_argument("--ks", type=lambda s: [int(v) for v in s.split(",") if v],
                        default=[2, 4, 8], help="quantize: k per layer (comma list)")
    parser.add_argument("--keeps", type=lambda s: [float(v) for v in s.split(",") if v],
                        default=[0.05, 0.1, 0.2], help="prune+quantize kept fractions")
    parser.add_argument("--iterative-keeps", type=lambda s: [float(v) for v in s.split(",") if v],
                        default=[], help="prune, recover, quantize, recover at these fractions")
    parser.add_argument("--pq-ks", type=lambda s: [int(v) for v in s.split(",") if v],
                        default=[4], help="prune+quantize: k per layer")
    parser.add_argument("--scope", choices=("layer", "global"), default="layer")
    parser.add_argument("--algorithm", default="lloyd")
    parser.add_argument("--losses", type=lambda s: [v for v in s.split(",") if v],
                        default=["distill", "task"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--limit", type=int, help="training samples (default: all)")
    parser.add_argument("--eval-limit", type=int, help="test samples (default: all)")
    parser.add_argument("--subset", choices=("first", "even"), default="first",
                        help="which samples --limit/--eval-limit keep: the first N, or N evenly "
                        "spaced (use 'even' for class-sorted image folders such as CIFAR JPEG)")
    parser.add_argument("--no-bias-correction", action="store_true")
    parser.add_argument("--no-finetune", action="store_true", help="level 0 only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--files", help="where the .rdz files go (default: "
                        "runs/recovery-files/<model>)")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw accuracy.png and summary.md from --out's results.json")
    parser.add_argument("-o", "--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    if args.plot_only:
        rows = json.loads((out / "results.json").read_text())
        plot(out, rows)
        summarize(out, rows, args)
        return
    torch.set_num_threads(args.threads)
    out.mkdir(parents=True, exist_ok=True)
    loaded = load_model(args.model, weights=args.weights)
    original = loaded.module.eval()
    name = Path(args.model).stem if Path(args.model).suffix else args.model
    files = Path(args.files or f"runs/recovery-files/{name}")
    files.mkdir(parents=True, exist_ok=True)
    dataset = args.data or loaded.dataset
    pick = evenly if args.subset == "even" else first
    train = make_loader(pick(load_dataset(dataset, split="train", data_dir=args.data_dir),
                             args.limit), loaded.preprocessing, args.batch_size, shuffle=True,
                        seed=0)
    test = make_loader(pick(load_dataset(dataset, split="test", data_dir=args.data_dir),
                            args.eval_limit), loaded.preprocessing, 500)
    importance = Importance.load(args.importance, original) if args.importance else None
    original_bytes = 4 * sum(t.numel() for t in original.state_dict().values()
                             if t.is_floating_point())
    reference = evaluate(original, test, original)
    rows: list[dict] = [{"model": name, "setting": "original", "stage": "original", "epoch": 0,
                         "bytes": original_bytes, "ratio": 1.0, "accuracy": reference.accuracy,
                         "agreement": 1.0, "kl": 0.0}]
    common = {"lr": args.lr, "batch_size": args.batch_size}
    if not args.no_finetune:
        for loss in [loss for loss in args.losses if loss != "distill"]:
            began = time.perf_counter()
            tuned = recover(raw_copy(original, loaded.spec), train,
                            RecoverConfig(epochs=args.epochs, loss=loss, **common),
                            original=original, model=original, eval_data=test)
            per_epoch = (time.perf_counter() - began) / args.epochs
            for row in tuned.history[1:]:
                rows.append({"model": name, "setting": "original", "stage": f"reference-{loss}",
                             "epoch": row["epoch"], "bytes": original_bytes, "ratio": 1.0,
                             "accuracy": row["accuracy"], "agreement": row.get("agreement"),
                             "kl": row.get("kl"), "seconds_per_epoch": per_epoch})
            write(out, rows)
    for label, config in settings(args):
        path = files / f"{label}.rdz"
        compress(original, config, importance, model_spec=loaded.spec).save(path)
        rows.append({"model": name, "setting": label, "stage": "compressed", "epoch": 0,
                     **file_row(path, original_bytes, original, test, original)})
        print(rows[-1], flush=True)
        level0_stages = [
            ("level0", RecoverConfig(epochs=0, bias_correction=not args.no_bias_correction,
                                     calibration_batches=40)),
            ("bn-only", RecoverConfig(epochs=0, bias_correction=False, calibration_batches=40)),
            ("bias-only", RecoverConfig(epochs=0, bias_correction=True, bn=False,
                                        calibration_batches=40))]
        for stage, config0 in level0_stages:
            result = recover(path, train, config0, original=original, model=original)
            target = files / f"{label}-{stage}.rdz"
            result.save(target)
            rows.append({"model": name, "setting": label, "stage": stage, "epoch": 0,
                         **file_row(target, original_bytes, original, test, original)})
            print(rows[-1], flush=True)
            if stage == "level0" and not result.level0["batchnorm"]:
                break  # no BatchNorm: level 0 is bias correction alone
        if args.no_finetune:
            write(out, rows)
            continue
        for loss in args.losses:
            began = time.perf_counter()
            config1 = RecoverConfig(epochs=args.epochs, loss=loss, **common)
            if label.startswith("ipq"):
                assert isinstance(config, PruneQuantizeConfig)
                result = iterative(original, loaded.spec, config, importance, train, test,
                                   config1, files / f"{label}-{loss}-stage2.rdz")
                per_epoch = (time.perf_counter() - began) / (2 * args.epochs)
            else:
                result = recover(path, train, config1, original=original, model=original,
                                 eval_data=test)
                per_epoch = (time.perf_counter() - began) / args.epochs
            target = files / f"{label}-{loss}.rdz"
            result.save(target)
            final = file_row(target, original_bytes, original, test, original)
            for row in result.history[1:]:
                rows.append({"model": name, "setting": label, "stage": loss,
                             "epoch": row["epoch"], "bytes": final["bytes"],
                             "ratio": final["ratio"], "accuracy": row["accuracy"],
                             "agreement": row.get("agreement"), "kl": row.get("kl"),
                             "seconds_per_epoch": per_epoch})
            rows[-1].update(final)  # the last epoch: measured from the file itself
            print(rows[-1], flush=True)
        write(out, rows)
    write(out, rows)
    plot(out, rows)
    summarize(out, rows, args)


COLUMNS = ["model", "setting", "stage", "epoch", "bytes", "ratio", "accuracy", "agreement",
           "kl", "seconds_per_epoch"]


def write(out: Path, rows: list[dict]) -> None:
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n")


def final_rows(rows: list[dict], stage: str) -> list[dict]:
    """The last epoch of each setting at ``stage``."""
    last: dict[str, dict] = {}
    for row in rows:
        if row["stage"] == stage and row["setting"] != "original":
            if row["setting"] not in last or row["epoch"] >= last[row["setting"]]["epoch"]:
                last[row["setting"]] = row
    return sorted(last.values(), key=lambda r: r["ratio"])


def family(setting: str) -> str:
    """q (quantize only), pq (prune+quantize, fine-tuned directly) or ipq (iterative)."""
    return setting.rstrip("0123456789.-k").split("0")[0] if setting != "original" else setting


def plot(out: Path, rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5))
    stages = [s for s in ("compressed", "level0", "bn-only", "bias-only", "distill", "task",
                          "mix")
              if any(r["stage"] == s for r in rows)]
    markers = {"q": "o", "pq": "s", "ipq": "^"}
    for color, stage in enumerate(stages):
        points = final_rows(rows, stage)
        for name, marker in markers.items():
            mine = [p for p in points if family(p["setting"]) == name]
            if not mine:
                continue
            if name == "ipq" and stage in ("compressed", "level0", "bn-only", "bias-only"):
                continue  # the same files as pq's
            axes.plot([p["ratio"] for p in mine], [100 * p["accuracy"] for p in mine],
                      marker=marker, ls="--" if stage == "compressed" else "-",
                      color=f"C{color}", label=f"{stage} ({name})")
    for stage, row in {r["stage"]: r for r in rows if r["setting"] == "original"}.items():
        axes.axhline(100 * row["accuracy"], lw=0.8, ls=":", color="k" if stage == "original"
                     else "C7", label=f"{stage} {100 * row['accuracy']:.2f}%")
    axes.set_xscale("log")
    axes.set_xlabel("file ratio (fp32 state_dict bytes / .rdz bytes)")
    axes.set_ylabel("test accuracy (%)")
    best = max(r["accuracy"] for r in rows)
    axes.set_ylim(max(0.0, 100 * best - 10), 100 * best + 0.5)
    axes.set_title(f"{rows[0]['model']}: before and after recovery "
                   "(q: quantize, pq: prune+quantize, ipq: iterative)")
    axes.legend(fontsize=6, ncol=2)
    figure.tight_layout()
    figure.savefig(out / "accuracy.png", dpi=120)
    plt.close(figure)


def summarize(out: Path, rows: list[dict], args: argparse.Namespace) -> None:
    original = next(r for r in rows if r["stage"] == "original")
    references = {"original": original["accuracy"]}
    for row in rows:
        if row["stage"].startswith("reference-") and row["epoch"] == args.epochs:
            references[row["stage"]] = row["accuracy"]
    lines = [f"# {original['model']}", "", "| reference | accuracy |", "|---|---|"]
    lines += [f"| {k} | {100 * v:.2f}% |" for k, v in references.items()]
    lines += ["", "Largest file ratio within 0.1 / 0.5 points of a reference (distill and "
              "level 0 against the original; task against the original fine-tuned the same "
              "way):", "", "| stage | reference | within 0.1 pt | within 0.5 pt |",
              "|---|---|---|---|"]
    for stage in sorted({r["stage"] for r in rows} - {"original"}):
        if stage.startswith("reference"):
            continue
        key = f"reference-{stage}" if f"reference-{stage}" in references else "original"
        cells = []
        for points in (0.001, 0.005):
            ok = [r["ratio"] for r in final_rows(rows, stage)
                  if r["accuracy"] >= references[key] - points]
            cells.append(f"{max(ok):.1f}×" if ok else "none")
        lines.append(f"| {stage} | {key} | {cells[0]} | {cells[1]} |")
    epochs = [r["seconds_per_epoch"] for r in rows if r.get("seconds_per_epoch")]
    if epochs:
        lines += ["", f"Wall time per fine-tuning epoch (with evaluation on the test split): "
                  f"{min(epochs):.1f}–{max(epochs):.1f} s, {args.threads} threads."]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
