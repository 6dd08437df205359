"""What the runs of a sweep share, made once on first use: the importance of each objective
(cached as files in the output directory), the calibration sample, and the methods' cache.

The calibration set is ``calibration_samples`` seeded-shuffled training samples, preprocessed
as the model expects; importance for an objective is computed on it (or read back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rdcompress.models import LoadedModel


class RunInputs:
    """What runs share, made on first use: importances by objective, the calibration loader,
    and the cache that methods keep between runs (allocation menus, input moments)."""

    def __init__(self, config: Any, loaded: LoadedModel, dataset: str, out: Path):
        self.config, self.loaded, self.dataset, self.out = config, loaded, dataset, out
        self.importances: dict[str, Any] = {}
        self.cache: dict = {}
        self._calibration: Any = None

    def importance(self, objective: str) -> Any:
        if objective not in self.importances:
            self.importances[objective] = _importance(self.config, self.loaded, self.dataset,
                                                      objective, self.out)
        return self.importances[objective]

    def calibration(self) -> Any:
        if self._calibration is None:
            self._calibration = _calibration(self.config, self.loaded, self.dataset)
        return self._calibration


def _importance(config: Any, loaded: LoadedModel, dataset: str, objective: str,
                out: Path) -> Any:
    from rdcompress.importance import Importance, baseline_importance, compute_importance

    if objective == "baseline":
        return baseline_importance(loaded.module)
    cached = out / f"importance-{objective.replace('+', '-')}.safetensors"
    if cached.is_file():
        return Importance.load(cached, loaded.module)
    from rdcompress.data import load_dataset
    from rdcompress.pipeline import make_loader

    calibration = _calibration(config, loaded, dataset)
    kwargs: dict[str, Any] = {"temperature": config.temperature}
    if config.temperature == "auto":
        val = load_dataset(dataset, split="val", data_dir=config.data_dir)
        kwargs["heldout"] = make_loader(val, loaded.preprocessing, 512)
    if objective in ("hessian", "gradient+hessian"):
        kwargs["mu"] = config.hessian_mu
    importance = compute_importance(loaded.module, calibration, objective, seed=config.seed,
                                    **kwargs)
    importance.save(cached)
    return importance


def _calibration(config: Any, loaded: LoadedModel, dataset: str) -> Any:
    """The calibration set: ``calibration_samples`` seeded-shuffled training samples."""
    from rdcompress.data import load_dataset
    from rdcompress.pipeline import make_loader, tensor_loader

    train = load_dataset(dataset, split="train", data_dir=config.data_dir)
    loader = make_loader(train, loaded.preprocessing, 128, shuffle=True, seed=config.seed,
                         limit=None)
    return tensor_loader(*_subset(loader, config.calibration_samples), batch_size=128)


def _subset(loader: Any, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` samples of a seeded shuffled loader, already preprocessed."""
    inputs, targets, seen = [], [], 0
    for x, y in loader:
        inputs.append(x)
        targets.append(y)
        seen += len(y)
        if seen >= count:
            break
    return torch.cat(inputs)[:count], torch.cat(targets)[:count]
