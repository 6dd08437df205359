"""What an importance computation runs with: one validated, serializable config."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from rdcompress.errors import ConfigError

# Objective name -> (needs labels, first-order part, needs the hessian module).
OBJECTIVES: dict[str, tuple[bool, bool, bool]] = {
    "baseline": (False, False, False),          # ones: the magnitude objective
    "fisher": (False, True, False),             # Table 1, exact: one backward per class
    "fisher-mc": (False, True, False),          # Table 1, sampled labels y ~ softmax(z/T)
    "output": (False, True, False),             # eq. 5: one backward per output coordinate
    "gradient": (True, True, False),            # Table 2: per-sample squared loss gradient
    "hessian": (True, False, True),             # Table 2 (OBD): E[d2L/dw2] + mu
    "gradient+hessian": (True, True, True),     # Table 2: gradient and E[(d2L/dw2)^2]
}
HESSIAN_METHODS = ("exact", "hutchinson", "curvature-propagation")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class ImportanceConfig:
    objective: str = "fisher"               # one of OBJECTIVES
    temperature: float | str = 1.0          # T > 0 of softmax(z/T), or "auto" (App. C.3.1)
    mc_samples: int = 1                     # labels drawn per input for "fisher-mc"
    mu: float = 0.0                         # added to the Hessian diagonal (App. C.3.2)
    hessian_method: str = "exact"           # estimator of the hessian module
    num_probes: int | None = None           # random probes per sample (stochastic estimators);
                                            # None: 2 for gradient+hessian with a stochastic
                                            # estimator (unbiased squares need 2), else 1
    chunk_size: int = 64                    # samples per forward pass (bounds memory)
    max_samples: int | None = None          # stop after this many calibration samples
    dtype: str = "float32"                  # "float32" or "float64" (model copy if needed)
    include_frozen: bool = True             # also score parameters with requires_grad=False
    seed: int = 0                           # generator seed for sampled labels and probes

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective={self.objective!r} is unknown; expected one of "
                              f"{', '.join(OBJECTIVES)}")
        if isinstance(self.temperature, str):
            if self.temperature != "auto":
                raise ConfigError(f"temperature={self.temperature!r} must be a positive number "
                                  "or 'auto'")
        elif not (math.isfinite(float(self.temperature)) and float(self.temperature) > 0):
            raise ConfigError(f"temperature={self.temperature!r} must be a finite number > 0")
        if self.num_probes is None:  # resolved here so that to_dict() records what runs
            self.num_probes = 2 if self.needs_unbiased_squares else 1
        for name in ("mc_samples", "num_probes", "chunk_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be an integer >= 1")
        if self.max_samples is not None and (not isinstance(self.max_samples, int)
                                             or self.max_samples < 1):
            raise ConfigError(f"max_samples={self.max_samples!r} must be None or an integer >= 1")
        if not (math.isfinite(self.mu) and self.mu >= 0):
            raise ConfigError(f"mu={self.mu!r} must be a finite number >= 0")
        if self.hessian_method not in HESSIAN_METHODS:
            raise ConfigError(f"hessian_method={self.hessian_method!r} is unknown; expected one "
                              f"of {', '.join(HESSIAN_METHODS)}")
        if self.needs_unbiased_squares and self.num_probes < 2:
            raise ConfigError(
                f"num_probes={self.num_probes} with objective 'gradient+hessian' and "
                f"hessian_method={self.hessian_method!r}: an unbiased estimate of E[h^2] needs "
                "at least 2 independent probes per sample; use num_probes >= 2 (or leave it "
                "unset for 2), or hessian_method='exact'")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype={self.dtype!r} must be one of {', '.join(DTYPES)}")

    @property
    def needs_labels(self) -> bool:
        return OBJECTIVES[self.objective][0]

    @property
    def needs_unbiased_squares(self) -> bool:
        """Squares of a stochastic Hessian estimate: pairs of probes make them unbiased."""
        return self.objective == "gradient+hessian" and self.hessian_method != "exact"

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
