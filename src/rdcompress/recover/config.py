"""``RecoverConfig``: what a recovery run does, validated on construction, recorded in the file."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from rdcompress.errors import ConfigError

LOSSES = ("task", "distill", "mix")
OPTIMIZERS = ("adam", "sgd")


@dataclass
class RecoverConfig:
    epochs: int = 1  # passes of fine-tuning over the data; 0 = level 0 only
    lr: float = 1e-4  # peak learning rate of the leaves (codebooks, kept values, raw tensors)
    loss: str = "distill"  # "task" (cross-entropy on labels), "distill" (KL to the original,
    #                        no labels), "mix" (mix_weight·task + (1 − mix_weight)·distill)
    temperature: float = 1.0  # T of the distillation softmax; the KL is scaled by T²
    mix_weight: float = 0.5  # weight of the task loss in "mix"
    batch_size: int = 128  # used when ``data`` is a dataset, not a DataLoader (and by the CLI)
    optimizer: str = "adam"  # "adam" | "sgd" (momentum 0.9)
    schedule: str = "cosine"  # "cosine" (to 0 over all steps) | "constant"
    weight_decay: float = 0.0
    seed: int = 0  # shuffling and dropout: epoch e draws from seed and e only (resumable)
    bn: bool = True  # re-estimate BatchNorm statistics (level 0; again after fine-tuning)
    bias_correction: bool = False  # fold E[(W − Ŵ)x] into biases (level 0; needs the original).
    #   Off by default: on the MNIST net at k <= 4 it lowers accuracy (docs/results/recovery)
    bias_mode: str = "network"  # "network": match the original's mean outputs (Nagel et al.);
    #                             "layer": zero each layer's own mean error (see level0)
    calibration_batches: int | None = None  # level-0 batches of the data (None: all)
    train_mode: bool = True  # fine-tune with dropout/batch statistics on (the model's train())

    method: ClassVar[str] = "recover"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name}={value!r} must be an integer")
        if self.epochs < 0:
            raise ConfigError(f"epochs={self.epochs} must be >= 0 (0 = level 0 only)")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1")
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr={self.lr!r} must be a finite number > 0")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss={self.loss!r} is unknown; use one of {LOSSES}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ConfigError(f"temperature={self.temperature!r} must be a finite number > 0")
        if not 0.0 <= self.mix_weight <= 1.0:  # also catches nan
            raise ConfigError(f"mix_weight={self.mix_weight!r} must be in [0, 1]")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r}; use one of {OPTIMIZERS}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule={self.schedule!r}; use 'cosine' or 'constant'")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay={self.weight_decay!r} must be a finite number >= 0")
        if self.bias_mode not in ("network", "layer"):
            raise ConfigError(f"bias_mode={self.bias_mode!r}; use 'network' or 'layer'")
        if self.calibration_batches is not None and (
                isinstance(self.calibration_batches, bool)
                or not isinstance(self.calibration_batches, int) or self.calibration_batches < 1):
            raise ConfigError(f"calibration_batches={self.calibration_batches!r} must be an "
                              "integer >= 1 or None (all)")

    @property
    def needs_original(self) -> bool:
        return self.bias_correction or (self.epochs > 0 and self.loss != "task")

    @property
    def needs_labels(self) -> bool:
        return self.epochs > 0 and self.loss != "distill"

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **asdict(self)}
