"""SVT fine-tuning vs one-shot truncation + fine-tuning, same rank and the same step budget.

    nice -n 5 python bench/svt.py --model runs/mnist-mlp.safetensors --data-dir ../shared/data \
        --out docs/results/lowrank/svt --ratios 0.05 --steps 300,1500 --seeds 0,1,2 \
        --decay-fractions 0.5,0.2

Targets: every hidden weight's rank by ``uniform_ranks`` at ``--ratio``; the 10-class head
(and any layer where that rank is not cheaper than dense) stays dense, as the global
allocation of bench/lowrank.py chooses. Variants, all SGD (lr, momentum, batch
128, the same batches in the same order):
- zero-shot: truncated SVD, no training;
- oneshot: truncated SVD -> LowRank modules, fine-tune the factors;
- oneshot-projected: truncate, then projected SGD at the target rank (SVT, decay 0);
- svt-hard-D / svt-soft-D: rank lowered linearly from full to the target over the first
  fraction D of the steps (one variant per ``--decay-fractions`` value);
- svt-hard-fisher-D: as svt-hard-D, thresholding in the FWSVD metric (Fisher row weights).
Every (ratio, steps, seed) gets its own batch order, shared by all variants. Writes
results.csv (test accuracy / cross-entropy of each run) and summary.md (mean, min and max
over seeds per variant). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import time
from pathlib import Path

import torch

from rdcompress.data import load_dataset
from rdcompress.evaluate import classification_metrics, collect_outputs
from rdcompress.importance import compute_importance
from rdcompress.lowrank import (
    DENSE,
    SVTConfig,
    factorize_modules,
    oneshot_finetune,
    row_weights,
    svt_finetune,
    truncated_svd,
    uniform_ranks,
)
from rdcompress.models import load_model
from rdcompress.pipeline import make_loader, tensor_loader


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="runs/mnist-mlp.safetensors")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--out", default="docs/results/lowrank/svt")
    parser.add_argument("--ratios", default="0.05")
    parser.add_argument("--steps", default="300", help="fine-tuning budgets, comma-separated")
    parser.add_argument("--decay-fractions", default="0.5",
                        help="SVT: fraction of the steps over which the rank is lowered")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--eval-limit", type=int, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the benchmark machine is shared: 2 threads oversubscribe it
    loaded = load_model(args.model)
    model, dataset = loaded.module, loaded.dataset
    test = make_loader(load_dataset(dataset, "test", data_dir=args.data_dir),
                       loaded.preprocessing, 500, limit=args.eval_limit)
    train_set = load_dataset(dataset, "train", data_dir=args.data_dir)
    params = dict(model.named_parameters())
    layers = [n for n, p in params.items() if p.ndim == 2]
    shapes = {n: (params[n].shape[0], params[n][0].numel()) for n in layers}
    calibration = _batches(make_loader(train_set, loaded.preprocessing, 128, shuffle=True,
                                       seed=99), 8)
    importance = compute_importance(model, tensor_loader(*_cat(calibration), batch_size=128),
                                    "fisher")
    rows_w = {n: row_weights(importance.quadratic[n].double()) for n in layers}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for ratio in (float(r) for r in args.ratios.split(",")):
        targets = {n: r for n, r in uniform_ranks(shapes, ratio).items()
                   if r is not DENSE and shapes[n][0] > 16}  # the 10-class head stays dense
        zero = factorize_modules(model, {n: truncated_svd(params[n].detach(), r)
                                         for n, r in targets.items()})
        rows.append(_row("zero-shot", ratio, 0, 0, targets, zero, test, 0.0))
        for steps, seed in itertools.product(_ints(args.steps), _ints(args.seeds)):
            batches = _batches(make_loader(train_set, loaded.preprocessing, 128, shuffle=True,
                                           seed=seed), steps)
            for name, config in _variants(steps, args.lr, _floats(args.decay_fractions)):
                torch.manual_seed(seed)  # dropout masks
                start = time.perf_counter()
                tuned = _run(name, model, batches, targets, config, rows_w)
                rows.append(_row(name, ratio, steps, seed, targets, tuned, test,
                                 time.perf_counter() - start))
                print(json.dumps(rows[-1]), flush=True)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "summary.md").write_text(_summary(rows))
    (out / "run.json").write_text(json.dumps({"args": vars(args), "layers": layers,
                                              "importance": "fisher (1024 train samples)"},
                                             indent=2) + "\n")


def _variants(steps: int, lr: float, decays: list[float]) -> list[tuple[str, SVTConfig]]:
    """(name, config) of every fine-tuning variant at this budget."""
    variants = [("oneshot", SVTConfig(steps=steps, lr=lr)),
                ("oneshot-projected", SVTConfig(steps=steps, lr=lr, decay_fraction=0.0))]
    for decay in decays:
        for threshold in ("hard", "soft"):
            variants.append((f"svt-{threshold}-{decay:g}",
                             SVTConfig(steps=steps, lr=lr, threshold=threshold,
                                       decay_fraction=decay)))
        variants.append((f"svt-hard-fisher-{decay:g}",
                         SVTConfig(steps=steps, lr=lr, decay_fraction=decay)))
    return variants


def _run(name, model, batches, targets, config, rows_w):
    if name == "oneshot":
        return oneshot_finetune(model, batches, targets, config)[0]
    weights = rows_w if name.startswith("svt-hard-fisher") else None
    return svt_finetune(model, batches, targets, config, weights)[0]


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",")]


def _summary(rows: list[dict]) -> str:
    """Markdown: accuracy mean (min–max) over seeds, per (ratio, steps) and variant."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        groups.setdefault((row["ratio"], row["steps"], row["variant"]), []).append(
            row["accuracy"])
    lines = ["| ratio | steps | variant | seeds | accuracy mean | min | max |",
             "|---|---|---|---|---|---|---|"]
    for (ratio, steps, variant), accs in groups.items():
        mean = sum(accs) / len(accs)
        lines.append(f"| {ratio:g} | {steps} | {variant} | {len(accs)} | {100 * mean:.2f}% "
                     f"| {100 * min(accs):.2f}% | {100 * max(accs):.2f}% |")
    return "\n".join(lines) + "\n"


def _batches(loader, count: int) -> list:
    batches = []
    while len(batches) < count:
        for batch in loader:
            batches.append(batch)
            if len(batches) == count:
                break
    return batches


def _cat(batches: list) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])


def _row(name, ratio, steps, seed, targets, net, test, seconds) -> dict:
    logits, labels = collect_outputs(net, test)
    metrics = classification_metrics(logits, labels)
    return {"variant": name, "ratio": ratio, "steps": steps, "seed": seed,
            "ranks": " ".join(f"{r}" for r in targets.values()),
            "accuracy": metrics.accuracy, "cross_entropy": metrics.cross_entropy,
            "seconds": round(seconds, 1)}


if __name__ == "__main__":
    main()
