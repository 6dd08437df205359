"""SVT fine-tuning vs one-shot truncation + fine-tuning, same rank and the same step budget.

    nice -n 5 python bench/svt.py --model runs/mnist-mlp.safetensors --data-dir ../shared/data \
        --out docs/results/lowrank/svt --ratio 0.05 --steps 300

Targets: every hidden weight's rank by ``uniform_ranks`` at ``--ratio``; the 10-class head
(and any layer where that rank is not cheaper than dense) stays dense, as the global
allocation of bench/lowrank.py chooses. Variants, all SGD (lr, momentum, batch
128, the same batches in the same order):
- zero-shot: truncated SVD, no training;
- oneshot: truncated SVD -> LowRank modules, fine-tune the factors;
- oneshot-projected: truncate, then projected SGD at the target rank (SVT, decay 0);
- svt-hard / svt-soft: rank lowered linearly from full to the target over half the steps;
- svt-hard-fisher: as svt-hard, thresholding in the FWSVD metric (Fisher row weights).
Writes results.csv (test accuracy / cross-entropy of each). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
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
    parser.add_argument("--steps", type=int, default=300)
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
        for seed in (int(s) for s in args.seeds.split(",")):
            batches = _batches(make_loader(train_set, loaded.preprocessing, 128, shuffle=True,
                                           seed=seed), args.steps)
            zero = factorize_modules(model, {n: truncated_svd(params[n].detach(), r)
                                             for n, r in targets.items()})
            rows.append(_row("zero-shot", ratio, seed, targets, zero, test, 0.0))
            config = SVTConfig(steps=args.steps, lr=args.lr, threshold="hard",
                               decay_fraction=0.5)
            for name in VARIANTS:
                torch.manual_seed(seed)  # dropout masks
                start = time.perf_counter()
                tuned = _run(name, model, batches, targets, config, rows_w)
                rows.append(_row(name, ratio, seed, targets, tuned, test,
                                 time.perf_counter() - start))
                print(json.dumps(rows[-1]), flush=True)
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "run.json").write_text(json.dumps({"args": vars(args), "layers": layers,
                                              "importance": "fisher (1024 train samples)"},
                                             indent=2) + "\n")


VARIANTS = ("oneshot", "oneshot-projected", "svt-hard", "svt-soft", "svt-hard-fisher")


def _run(name, model, batches, targets, config, rows_w):
    if name == "oneshot":
        return oneshot_finetune(model, batches, targets, config)[0]
    weights = rows_w if name == "svt-hard-fisher" else None
    if name == "oneshot-projected":
        config = SVTConfig(**{**config.to_dict(), "decay_fraction": 0.0})
    if name == "svt-soft":
        config = SVTConfig(**{**config.to_dict(), "threshold": "soft"})
    return svt_finetune(model, batches, targets, config, weights)[0]


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


def _row(name, ratio, seed, targets, net, test, seconds) -> dict:
    logits, labels = collect_outputs(net, test)
    metrics = classification_metrics(logits, labels)
    return {"variant": name, "ratio": ratio, "seed": seed,
            "ranks": " ".join(f"{r}" for r in targets.values()),
            "accuracy": metrics.accuracy, "cross_entropy": metrics.cross_entropy,
            "seconds": round(seconds, 1)}


if __name__ == "__main__":
    main()
