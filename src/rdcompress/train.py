"""Deterministic training of zoo models, saved as safetensors plus a JSON sidecar.

Same seed, same data, same machine -> the same weights, bit for bit (seeded init, seeded shuffling,
deterministic kernels). The sidecar ``NAME.json`` beside ``NAME.safetensors`` records the model
spec, dataset, preprocessing, accuracy, seed and the training settings, so that
``rdcompress.models.load_model("NAME.safetensors")`` rebuilds everything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sized
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from rdcompress import __version__
from rdcompress._io import atomic_write_bytes, atomic_write_text, state_dict_sha256
from rdcompress.codec.safetensors_out import safetensors_bytes
from rdcompress.errors import ConfigError, NonFiniteError
from rdcompress.evaluate import classification_metrics, collect_outputs
from rdcompress.models import ZOO, Preprocessing, build_from_spec, get_entry
from rdcompress.models.loading import SIDECAR_FORMAT, sidecar_path
from rdcompress.pipeline import make_loader
from rdcompress.progress import progress


@dataclass
class TrainConfig:
    model: str = "digits-mlp"  # zoo name (see `rdcompress models`)
    dataset: str | None = None  # default: the zoo entry's dataset
    data_dir: str | None = None  # where dataset files are (see rdcompress.data)
    epochs: int = 40  # passes over the training split
    batch_size: int = 64
    lr: float = 1e-3  # peak learning rate (cosine decay to 0)
    weight_decay: float = 0.0
    optimizer: str = "adam"  # "adam" | "sgd" (momentum 0.9, nesterov)
    seed: int = 0  # initialization and shuffling
    limit: int | None = None  # use only the first N training samples (for quick runs)

    def __post_init__(self) -> None:
        if self.model not in ZOO:
            get_entry(self.model)  # raises ModelError with the list of known names
        if self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs} must be >= 1")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"lr={self.lr} must be > 0")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"optimizer={self.optimizer!r} must be 'adam' or 'sgd'")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    module: nn.Module
    spec: dict[str, Any]
    dataset: str
    preprocessing: Preprocessing
    config: TrainConfig
    metrics: dict[str, Any] = field(default_factory=dict)  # val/test accuracy and loss
    seconds: float = 0.0


def _load_split(dataset: str, split: str, data_dir: str | None) -> Any:
    from rdcompress.data import load_dataset

    return load_dataset(dataset, split=split, data_dir=data_dir)


def train(config: TrainConfig) -> TrainResult:
    """Train ``config.model`` on its dataset's train split; report val and test metrics."""
    entry = get_entry(config.model)
    dataset = config.dataset or entry.dataset
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    spec = {"zoo": config.model, "kwargs": {}}
    module = build_from_spec(spec)
    train_loader = make_loader(_load_split(dataset, "train", config.data_dir),
                               entry.preprocessing, config.batch_size, shuffle=True,
                               seed=config.seed, limit=config.limit)
    if config.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam(
            module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        optimizer = torch.optim.SGD(module.parameters(), lr=config.lr, momentum=0.9,
                                    nesterov=True, weight_decay=config.weight_decay)
    total_steps = config.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=0.1,
        anneal_strategy="cos")
    module.train()
    bar = progress(range(config.epochs), desc=f"train {config.model}", unit="epoch")
    for epoch in bar:
        running = 0.0
        for inputs, targets in train_loader:
            loss = F.cross_entropy(module(inputs), targets)
            if not torch.isfinite(loss):
                raise NonFiniteError(f"training loss became {float(loss)} at epoch {epoch}; "
                                     "lower --lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += float(loss.detach()) * len(targets)
        num_samples = len(cast(Sized, train_loader.dataset))  # make_loader's TensorBatches
        bar.set_postfix(loss=f"{running / num_samples:.4f}")
    module.eval()
    metrics = {}
    for split in ("val", "test"):
        loader = make_loader(_load_split(dataset, split, config.data_dir), entry.preprocessing,
                             batch_size=512)
        logits, labels = collect_outputs(module, loader)
        result = classification_metrics(logits, labels)
        metrics[split] = {"accuracy": result.accuracy, "cross_entropy": result.cross_entropy,
                          "num_samples": result.num_samples}
    return TrainResult(module, spec, dataset, entry.preprocessing, config, metrics,
                       time.perf_counter() - start)


def save_trained(result: TrainResult, path: str | Path) -> Path:
    """Write ``path`` (.safetensors) and its sidecar ``.json`` atomically; returns the sidecar.

    Both files are byte-identical for identical training: the sidecar records no wall time
    (``result.seconds`` is for the caller to print) and the weights go through the canonical
    ``safetensors_bytes`` writer.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(f"output {str(path)!r} must end in .safetensors")
    state = {k: v.detach().contiguous() for k, v in result.module.state_dict().items()}
    sidecar = {
        "format": SIDECAR_FORMAT,
        "rdcompress_version": __version__,
        "spec": result.spec,
        "dataset": result.dataset,
        "preprocessing": result.preprocessing.to_dict(),
        "metrics": result.metrics,
        "seed": result.config.seed,
        "train_config": result.config.to_dict(),
        "weights_sha256": state_dict_sha256(state),
    }
    atomic_write_bytes(path, safetensors_bytes(state, {"format": SIDECAR_FORMAT}))
    side = sidecar_path(path)
    atomic_write_text(side, json.dumps(sidecar, indent=2) + "\n")
    return side
