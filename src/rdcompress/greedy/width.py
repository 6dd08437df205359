"""The width experiment of paper 3: greedy-compress 3-layer MLPs of growing width.

For each dataset, width and seed: train MLP(d, (width, width), c) (Adam, fixed steps), then
greedy-compress its weight matrices (α, p for pruning; k for quantization; second-order score),
write the real .rdz, load it back and compare on the test split:

    normalized_error = Σ_n ||f_ŵ(x_n) − f_w(x_n)||² / Σ_n ||f_w(x_n)||²   (logits / outputs)
    loss_change      = L_test(ŵ) − L_test(w)   (cross-entropy on digits, MSE on diabetes)
    kept_fraction    = nonzero-stored weights / weights of the compressed layers (pruning)

against the expectation (1 − α) + α·p and the paper's quoted 0.01 + 1.01·p. Datasets:
"digits" (scikit-learn's 8×8 digits, the project's seeded split, pixels in [0, 1]) and
"diabetes" (scikit-learn's diabetes regression, 442 × 10, a seeded 80/20 split, inputs and
target standardized with training statistics). Rows go to ``width.csv`` as they finish; the
plot ``width.png`` is drawn from the rows alone (``plot_width``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rdcompress._io import atomic_write_text
from rdcompress.errors import ConfigError
from rdcompress.greedy.api import greedy_compress
from rdcompress.greedy.config import GreedyConfig
from rdcompress.models.mlp import MLP
from rdcompress.pipeline import tensor_loader
from rdcompress.progress import progress
from rdcompress.results import write_rows

DATASETS = ("digits", "diabetes")
LAYER_SETS = ("all", "hidden")  # all weight matrices, or the (width, width) one only
ROW_FIELDS = [
    "dataset", "width", "seed", "mode", "layers", "alpha", "p", "k", "kept_fraction",
    "expected_kept", "paper_kept", "zero_fraction", "normalized_error", "test_loss",
    "test_loss_compressed", "loss_change", "accuracy", "accuracy_compressed", "file_bytes",
    "file_ratio", "train_seconds", "compress_seconds",
]


@dataclass
class WidthConfig:
    widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512)  # hidden width of both layers
    datasets: tuple[str, ...] = DATASETS
    seeds: tuple[int, ...] = (0, 1, 2)  # training init/shuffle and the greedy draws (same seed)
    modes: tuple[str, ...] = ("prune", "quantize")
    layer_sets: tuple[str, ...] = ("all",)  # "all" weight matrices and/or "hidden" only
    alpha: float = 0.9  # fraction of each layer replaced
    p: float = 0.3  # keep probability of a pruned weight
    k: int = 4  # quantization grid spacing M/k
    block: int | None = None  # units per score refresh (None: 20 refreshes per layer)
    train_steps: int = 1000  # Adam steps, batch 64
    lr: float = 1e-3
    calibration_samples: int = 512  # training samples defining the greedy loss L
    output_dir: str = "docs/results/width"
    threads: int | None = None  # torch CPU threads during the run (restored after); None: as is

    def __post_init__(self) -> None:
        for dataset in self.datasets:
            if dataset not in DATASETS:
                raise ConfigError(f"dataset {dataset!r} is unknown; use one of {DATASETS}.")
        for layer_set in self.layer_sets:
            if layer_set not in LAYER_SETS:
                raise ConfigError(f"layer set {layer_set!r} is unknown; use {LAYER_SETS}.")
        if not self.widths or any(int(w) < 1 for w in self.widths):
            raise ConfigError(f"widths={self.widths} must be integers >= 1.")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads={self.threads} must be >= 1 or None.")
        if self.train_steps < 1 or self.calibration_samples < 1:
            raise ConfigError("train_steps and calibration_samples must be >= 1.")
        for mode in self.modes:  # validates p, k, alpha, block and the modes
            GreedyConfig(mode=mode, p=self.p, k=self.k, alpha=self.alpha, block=self.block)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Split:
    x_train: torch.Tensor  # (N, d) float32
    y_train: torch.Tensor  # (N,) int64 labels or (N, 1) float32 targets
    x_test: torch.Tensor
    y_test: torch.Tensor
    outputs: int  # classes, or 1 for regression

    @property
    def regression(self) -> bool:
        return self.y_train.is_floating_point()


def load_split(dataset: str) -> Split:
    """Train/test tensors of "digits" or "diabetes" (see the module docstring)."""
    if dataset == "digits":
        from rdcompress.data import load_dataset
        from rdcompress.pipeline import dataset_tensors

        parts = [dataset_tensors(load_dataset("digits", split=s)) for s in ("train", "test")]
        (xa, ya), (xb, yb) = parts
        return Split(xa.flatten(1).float(), ya.long(), xb.flatten(1).float(), yb.long(), 10)
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)  # (442, 10), (442,)
    order = np.random.RandomState(0).permutation(len(y))
    cut = int(round(0.8 * len(y)))
    train, test = order[:cut], order[cut:]
    mean, std = x[train].mean(0), x[train].std(0)
    y_mean, y_std = y[train].mean(), y[train].std()

    def tensors(index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = torch.from_numpy((x[index] - mean) / std).float()
        return inputs, torch.from_numpy((y[index] - y_mean) / y_std).float().unsqueeze(1)

    (xa, ya), (xb, yb) = tensors(train), tensors(test)
    return Split(xa, ya, xb, yb, 1)


def train_mlp(split: Split, width: int, seed: int, steps: int, lr: float) -> MLP:
    """MLP(d, (width, width), outputs) trained with Adam on minibatches of 64 (seeded)."""
    torch.manual_seed(seed)
    model = MLP(split.x_train.shape[1], (width, width), split.outputs)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    n = len(split.x_train)
    model.train()
    for _ in range(steps):
        index = torch.randint(0, n, (min(64, n),), generator=generator)
        loss = _loss(model(split.x_train[index]), split.y_train[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.eval()


def run_width(config: WidthConfig) -> list[dict[str, Any]]:
    """Run the grid, write ``width.csv``, ``width.json`` (settings) and ``width.png``."""
    threads = torch.get_num_threads()
    if config.threads is not None:  # small models: 1 thread is often faster than several
        torch.set_num_threads(config.threads)
    try:
        return _run_grid(config)
    finally:
        torch.set_num_threads(threads)


def _run_grid(config: WidthConfig) -> list[dict[str, Any]]:
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "width.json", json.dumps(config.to_dict(), indent=2) + "\n")
    rows: list[dict[str, Any]] = []
    grid = [(d, w, s) for d in config.datasets for w in config.widths for s in config.seeds]
    splits = {d: load_split(d) for d in config.datasets}
    with tempfile.TemporaryDirectory() as scratch:
        for dataset, width, seed in progress(grid, desc="width", unit="model"):
            split = splits[dataset]
            start = time.perf_counter()
            model = train_mlp(split, int(width), seed, config.train_steps, config.lr)
            train_seconds = time.perf_counter() - start
            for mode in config.modes:
                for layer_set in config.layer_sets:
                    row = _compress_row(config, split, model, mode, layer_set, seed,
                                        Path(scratch))
                    rows.append({"dataset": dataset, "width": int(width), "seed": seed,
                                 **row, "train_seconds": round(train_seconds, 3)})
            write_csv(rows, out / "width.csv")
    plot_width(rows, out / "width.png")
    return rows


def _compress_row(config: WidthConfig, split: Split, model: MLP, mode: str, layer_set: str,
                  seed: int, scratch: Path) -> dict[str, Any]:
    from rdcompress.compress import load

    names = [n for n, p in model.named_parameters() if p.ndim == 2]  # 3 weight matrices
    if layer_set == "hidden":
        names = names[1:2]
    greedy = GreedyConfig(mode=mode, p=config.p, k=config.k, alpha=config.alpha,
                          block=config.block, seed=seed)
    count = min(config.calibration_samples, len(split.x_train))
    calibration = tensor_loader(split.x_train[:count], split.y_train[:count], 256)
    start = time.perf_counter()
    compressed = greedy_compress(model, calibration, greedy, layers=names)
    path = scratch / "model.rdz"
    summary = compressed.save(path)
    compressed_model = load(path, model=model)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        before, after = model(split.x_test), compressed_model(split.x_test)  # (N, C)
    numel = sum(compressed.layers[n].numel for n in names)
    zeros = sum(int((compressed.state_dict()[n] == 0).sum()) for n in names)
    loss_before, loss_after = float(_loss(before, split.y_test)), float(_loss(after, split.y_test))
    row = {
        "mode": mode, "layers": layer_set, "alpha": config.alpha, "p": config.p, "k": config.k,
        "kept_fraction": sum(compressed.layers[n].kept for n in names) / numel,
        "expected_kept": (1 - config.alpha) + config.alpha * config.p if mode == "prune" else 1.0,
        "paper_kept": 0.01 + 1.01 * config.p if mode == "prune" else None,
        "zero_fraction": zeros / numel,
        "normalized_error": normalized_error(before, after),
        "test_loss": loss_before, "test_loss_compressed": loss_after,
        "loss_change": loss_after - loss_before,
        "accuracy": None, "accuracy_compressed": None,
        "file_bytes": summary.file_bytes, "file_ratio": summary.ratio,
        "compress_seconds": round(seconds, 3),
    }
    if not split.regression:
        row["accuracy"] = float((before.argmax(1) == split.y_test).float().mean())
        row["accuracy_compressed"] = float((after.argmax(1) == split.y_test).float().mean())
    return row


def normalized_error(reference: torch.Tensor, compressed: torch.Tensor) -> float:
    """Σ_n ||f_ŵ(x_n) − f_w(x_n)||² / Σ_n ||f_w(x_n)||²; both (N, C), in float64."""
    reference, compressed = reference.double(), compressed.double()
    return float(((compressed - reference) ** 2).sum() / (reference ** 2).sum())


def _loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    if targets.is_floating_point():
        return F.mse_loss(outputs, targets)
    return F.cross_entropy(outputs, targets)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    write_rows(rows, path, ROW_FIELDS)


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of ``width.csv`` with numbers parsed (empty cells -> None)."""
    rows = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            rows.append({k: _parse(v) for k, v in raw.items()})
    return rows


def _parse(text: str) -> Any:
    if text == "":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean (and standard deviation) over seeds per (dataset, mode, layers, width)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        group = (row["dataset"], row["mode"], row["layers"], row["width"])
        groups.setdefault(group, []).append(row)
    table = []
    for (dataset, mode, layers, width), members in sorted(groups.items()):
        entry: dict[str, Any] = {"dataset": dataset, "mode": mode, "layers": layers,
                                 "width": width, "seeds": len(members)}
        for key in ("normalized_error", "loss_change", "kept_fraction", "accuracy",
                    "accuracy_compressed"):
            values = [m[key] for m in members if m.get(key) is not None]
            entry[key] = float(np.mean(values)) if values else None
            if key in ("normalized_error", "loss_change") and values:
                entry[f"{key}_std"] = float(np.std(values))
        table.append(entry)
    return table


def plot_width(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Normalized error, test-loss change and kept fraction against width (mean ± sd)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summarize(rows)
    datasets = sorted({r["dataset"] for r in table})
    fig, axes = plt.subplots(3, len(datasets), figsize=(5.5 * len(datasets), 10), squeeze=False)
    for column, dataset in enumerate(datasets):
        for series in sorted({(r["mode"], r["layers"]) for r in table if r["dataset"] == dataset}):
            points = [r for r in table if r["dataset"] == dataset and (r["mode"], r["layers"])
                      == series]
            widths = [r["width"] for r in points]
            label = f"{series[0]} ({series[1]} layers)"
            for row_index, key in enumerate(("normalized_error", "loss_change")):
                axes[row_index][column].errorbar(
                    widths, [r[key] for r in points], yerr=[r[f"{key}_std"] for r in points],
                    marker="o", capsize=3, label=label)
            if series[0] == "prune":
                axes[2][column].plot(widths, [r["kept_fraction"] for r in points], marker="o",
                                     label=label)
        prune_rows = [r for r in rows if r["dataset"] == dataset and r["mode"] == "prune"]
        if prune_rows:
            expected, quoted = prune_rows[0]["expected_kept"], prune_rows[0]["paper_kept"]
            axes[2][column].axhline(expected, color="gray", ls=":", label="(1 − α) + α·p")
            axes[2][column].axhline(quoted, color="k", ls="--", label="0.01 + 1.01·p (paper)")
        axes[0][column].set_yscale("log")
        axes[0][column].set_title(f"{dataset}: greedy compression vs width")
        axes[0][column].set_ylabel("‖f_ŵ − f_w‖² / ‖f_w‖² (test)")
        axes[1][column].set_ylabel("test loss change")
        axes[2][column].set_ylabel("kept fraction (pruning)")
        axes[2][column].set_xlabel("hidden width")
        for ax in axes[:, column]:
            ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    from rdcompress._io import atomic_write_bytes

    atomic_write_bytes(path, buffer.getvalue())
    return path


def geometric_slope(table: list[dict[str, Any]], dataset: str, mode: str, layers: str) -> float:
    """Least-squares slope of log2(normalized error) against log2(width) (negative = falls)."""
    points = [(math.log2(r["width"]), math.log2(r["normalized_error"])) for r in table
              if (r["dataset"], r["mode"], r["layers"]) == (dataset, mode, layers)
              and r["normalized_error"] and r["normalized_error"] > 0]
    if len(points) < 2:
        return float("nan")
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0])
