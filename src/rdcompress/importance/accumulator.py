"""Mergeable importance statistics: float64 sums over samples plus a sample count.

Shards computed in other processes or machines merge exactly (up to float64 rounding):
``ImportanceAccumulator.merge`` adds sums and counts, after checking that both shards ran the
same objective and settings on the same weights. ``save``/``load`` keep partial sums on disk.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch
from torch import Tensor

from rdcompress.errors import ConfigError, NonFiniteError
from rdcompress.importance.result import Importance, header, read_file, write_file

SUM_PREFIX, QUARTIC_SUM_PREFIX = "sum/", "quartic_sum/"
# Settings that may differ between shards (docs/importance-format.md): how much data, how it is
# split, and the seed (shards of fisher-mc / stochastic estimators should draw independently).
_SHARD_FREE = {"max_samples", "chunk_size", "seed"}


class ImportanceAccumulator:
    """Streams ``update(quadratic_sums, quartic_sums, num_samples)``; ``finalize()`` averages.

    ``mu`` (App. C.3.2) is added to the averaged quadratic part of the "hessian" objective.
    """

    def __init__(self, objective: str, shapes: dict[str, tuple[int, ...]], *,
                 temperature: float | None, weights_sha256: str, quartic: bool = False,
                 mu: float = 0.0, metadata: dict[str, Any] | None = None) -> None:
        self.objective = objective
        self.temperature = temperature
        self.weights_sha256 = weights_sha256
        self.mu = mu
        self.metadata = dict(metadata or {})
        self.quadratic_sum = {n: torch.zeros(s, dtype=torch.float64) for n, s in shapes.items()}
        self.quartic_sum = ({n: torch.zeros(s, dtype=torch.float64) for n, s in shapes.items()}
                            if quartic else None)
        self.num_samples = 0
        self.touched: set[str] = set()  # parameters that received any gradient

    def update(self, quadratic: dict[str, Tensor], quartic: dict[str, Tensor] | None = None,
               num_samples: int = 0) -> ImportanceAccumulator:
        for name, value in quadratic.items():
            self.quadratic_sum[name] += value.detach().to("cpu", torch.float64)
            self.touched.add(name)
        if quartic is not None:
            if self.quartic_sum is None:
                raise ConfigError(f"objective {self.objective!r} has no quartic part")
            for name, value in quartic.items():
                self.quartic_sum[name] += value.detach().to("cpu", torch.float64)
        self.num_samples += num_samples
        return self

    def merge(self, other: ImportanceAccumulator) -> ImportanceAccumulator:
        """Add another shard's sums and counts into this one (in place); returns self."""
        mine, theirs = self._identity(), other._identity()
        for key in mine:
            if mine[key] != theirs[key]:
                raise ConfigError(f"cannot merge importance shards: {key} differs "
                                  f"({mine[key]!r} vs {theirs[key]!r})")
        if set(self.quadratic_sum) != set(other.quadratic_sum):
            raise ConfigError("cannot merge importance shards over different parameter sets")
        touched = self.touched | other.touched
        self.update(other.quadratic_sum, other.quartic_sum, other.num_samples)
        self.touched = touched
        return self

    def _identity(self) -> dict[str, Any]:
        config = {k: v for k, v in self.metadata.get("config", {}).items() if k not in _SHARD_FREE}
        return {"objective": self.objective, "temperature": self.temperature,
                "weights_sha256": self.weights_sha256, "mu": self.mu, "config": config,
                "quartic": self.quartic_sum is not None}

    def finalize(self) -> Importance:
        if self.num_samples < 1:
            raise ConfigError("no calibration samples were seen; the loader yielded nothing")
        quadratic = {n: (s / self.num_samples).float() for n, s in self.quadratic_sum.items()}
        if self.objective == "hessian" and self.mu:
            quadratic = {n: v + self.mu for n, v in quadratic.items()}
        quartic = (None if self.quartic_sum is None else
                   {n: (s / self.num_samples).float() for n, s in self.quartic_sum.items()})
        for part in (quadratic, quartic or {}):
            for name, value in part.items():
                if not torch.isfinite(value).all():
                    raise NonFiniteError(f"importance of parameter {name!r} is NaN or inf; the "
                                         "model's gradients overflowed (try dtype='float64')")
        if self.objective == "hessian" and any((v < 0).any() for v in quadratic.values()):
            warnings.warn("the Hessian diagonal estimate has negative entries; raise mu "
                          "(App. C.3.2) to make every importance positive", stacklevel=2)
        metadata = dict(self.metadata)
        no_gradient = sorted(set(self.quadratic_sum) - self.touched)
        metadata["no_gradient"] = no_gradient
        if no_gradient:
            warnings.warn(f"{len(no_gradient)} parameter(s) received no gradient from the "
                          f"calibration data (importance 0): {no_gradient[:5]}", stacklevel=2)
        metadata["mu"] = self.mu
        return Importance(self.objective, quadratic, quartic, self.temperature,
                          self.num_samples, self.weights_sha256, metadata)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the partial sums (float64) so that another process can merge them."""
        tensors = {SUM_PREFIX + n: s.contiguous() for n, s in self.quadratic_sum.items()}
        for name, value in (self.quartic_sum or {}).items():
            tensors[QUARTIC_SUM_PREFIX + name] = value.contiguous()
        meta = {**self.metadata, "mu": self.mu, "touched": sorted(self.touched)}
        write_file(path, tensors, header("partial-sums", self.objective, self.temperature,
                                         self.num_samples, self.weights_sha256, meta))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ImportanceAccumulator:
        tensors, meta = read_file(path, "partial-sums")
        sums = {k[len(SUM_PREFIX):]: v for k, v in tensors.items() if k.startswith(SUM_PREFIX)}
        quartic = {k[len(QUARTIC_SUM_PREFIX):]: v for k, v in tensors.items()
                   if k.startswith(QUARTIC_SUM_PREFIX)}
        extra = dict(meta["metadata"])
        mu, touched = extra.pop("mu", 0.0), set(extra.pop("touched", []))
        acc = cls(meta["objective"], {n: tuple(v.shape) for n, v in sums.items()},
                  temperature=meta["temperature"], weights_sha256=meta["weights_sha256"],
                  quartic=bool(quartic), mu=mu, metadata=extra)
        acc.update(sums, quartic or None, meta["num_samples"])
        acc.touched = touched
        return acc
