"""``GreedyConfig``: the settings of randomized greedy compression (paper 3, El Cheairi et al.)."""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, fields
from typing import Any

from rdcompress.errors import ConfigError

PRUNE, QUANTIZE = "prune", "quantize"  # the modes (not the methods of the same names)
MODES = (PRUNE, QUANTIZE)
SCORES = ("exact", "second-order")
LOSSES = ("auto", "cross-entropy", "mse")
DEFAULT_REFRESHES = 20  # score refreshes per layer of the second-order score when block=None


@dataclass
class GreedyConfig:
    mode: str = "prune"  # "prune": t = w·Bernoulli(p)/p; "quantize": stochastic rounding
    p: float = 0.3  # keep probability of a replaced weight (prune), in (0, 1]
    k: int = 4  # quantize: grid spacing M/k on [−M, M], M = ||W_ℓ||∞ (2k + 1 levels)
    alpha: float = 0.9  # fraction of each layer's units replaced: ⌊α·units⌋ steps, in (0, 1]
    score: str = "second-order"  # "exact": |E_t L(w←t) − L| by forward passes (small models);
    #   "second-order": ½ H_ii Var t with the diagonal Hessian of the calibration loss
    structured: bool = False  # prune whole units (rows/columns/channels) with one Bernoulli each
    dim: int = 0  # structured unit: 0 = output neurons (rows) / output channels, 1 = input
    #   neurons (columns of a Linear weight)
    block: int | None = None  # units replaced per score refresh; None: 1 for "exact" (the
    #   paper's loop), ⌈steps / 20⌉ for "second-order" (cross terms within a block ignored)
    seed: int = 0  # the random draws of t
    loss: str = "auto"  # calibration loss L: "auto" = cross-entropy for integer targets,
    #   mse for floating targets

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r} is unknown; use one of {MODES}.")
        if self.score not in SCORES:
            raise ConfigError(f"score={self.score!r} is unknown; use one of {SCORES}.")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss={self.loss!r} is unknown; use one of {LOSSES}.")
        self.p = _fraction("p", self.p, "the keep probability of a pruned weight")
        self.alpha = _fraction("alpha", self.alpha, "the fraction of each layer replaced")
        if isinstance(self.k, bool) or not isinstance(self.k, numbers.Integral) \
                or int(self.k) < 1:
            raise ConfigError(f"k={self.k!r} must be an integer >= 1 (grid spacing M/k).")
        self.k = int(self.k)
        if self.block is not None and (isinstance(self.block, bool)
                                       or not isinstance(self.block, numbers.Integral)
                                       or int(self.block) < 1):
            raise ConfigError(f"block={self.block!r} must be an integer >= 1 or None.")
        if self.dim not in (0, 1) or isinstance(self.dim, bool):
            raise ConfigError(f"dim={self.dim!r} must be 0 (output units) or 1 (input units).")
        if self.structured and self.mode != "prune":
            raise ConfigError("structured=True applies to mode='prune' only (one Bernoulli "
                              "scales a whole unit); quantize unstructured.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ConfigError(f"seed={self.seed!r} must be an integer.")

    @property
    def method(self) -> str:
        """The method name in manifests and result tables: "greedy-prune" | "greedy-quantize"."""
        return f"greedy-{self.mode}"

    def block_for(self, steps: int) -> int:
        """Units replaced per score refresh for a layer of ``steps`` replacements."""
        if self.block is not None:
            return self.block
        if self.score == "exact":
            return 1
        return max(1, math.ceil(steps / DEFAULT_REFRESHES))

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GreedyConfig:
        """Rebuild from ``to_dict()`` (e.g. a manifest's "settings"); unknown keys ignored."""
        names = {field.name for field in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


def _fraction(name: str, value: Any, meaning: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or not 0 < float(value) <= 1:
        raise ConfigError(f"{name}={value!r} ({meaning}) must be a number in (0, 1].")
    return float(value)
