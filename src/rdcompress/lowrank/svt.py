"""Iterative singular value thresholding (SVT): fine-tuning under a soft rank constraint.

Companion paper §2 (Shumaylov et al.): a proximal method — per step, a gradient step on the
loss, then each factorized layer's weight W (out, d) is projected back:

    W ← U diag(τ(σ)) Vᵀ,   hard: τ(σ)_i = σ_i if i < r_t else 0,
                            soft: τ(σ)_i = max(σ_i − σ_{r_t}, 0)  (rank ≤ r_t, all shrunk)

where r_t follows a schedule from the full rank down to the target (``rank_schedule``). The
Fisher-weighted variant thresholds in the FWSVD metric: SVD of diag(ŵ) W, then diag(ŵ)⁻¹.
The paper's claim: lowering the rank gradually / thresholding softly beats truncating at once
and fine-tuning (``oneshot_finetune``) at the same rank and fine-tuning budget.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rdcompress.errors import ConfigError
from rdcompress.lowrank.factorize import fwsvd, truncated_svd
from rdcompress.lowrank.modules import factorize_modules

THRESHOLDS = ("hard", "soft")


@dataclass
class SVTConfig:
    steps: int = 300  # gradient steps (mini-batches) in all
    lr: float = 0.01  # SGD learning rate
    momentum: float = 0.9
    threshold: str = "hard"  # "hard" | "soft" thresholding of the singular values
    decay_fraction: float = 0.5  # the rank reaches the target after this fraction of steps;
    #                              0 = truncate to the target at once (one-shot projected SGD)
    project_every: int = 1  # threshold every this many steps (and always at the last)

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ConfigError(f"steps={self.steps!r} must be an integer >= 1.")
        if not (self.lr > 0 and self.momentum >= 0):
            raise ConfigError(f"lr={self.lr!r} must be > 0 and momentum={self.momentum!r} >= 0.")
        if self.threshold not in THRESHOLDS:
            raise ConfigError(f"threshold={self.threshold!r}; use one of {THRESHOLDS}.")
        if not 0 <= self.decay_fraction <= 1:
            raise ConfigError(f"decay_fraction={self.decay_fraction!r} must be in [0, 1].")
        if not (isinstance(self.project_every, int) and self.project_every >= 1):
            raise ConfigError(f"project_every={self.project_every!r} must be an integer >= 1.")

    def to_dict(self) -> dict:
        return asdict(self)


def rank_schedule(start: int, target: int, step: int, decay_steps: int) -> int:
    """The rank at ``step`` (0-based): linear from ``start`` (step 0) to ``target`` at
    ``decay_steps`` and after; rounded up, so never below the target."""
    if decay_steps <= 0 or step >= decay_steps:
        return target
    remaining = (start - target) * (decay_steps - step) / decay_steps
    return target + int(-(-remaining // 1))  # ceil


def threshold_singular_values(W: torch.Tensor, rank: int, threshold: str = "hard",
                              row_weights: torch.Tensor | None = None) -> torch.Tensor:
    """W (out, d) with its spectrum thresholded to rank <= ``rank`` (same dtype).

    ``row_weights`` (out,) > 0: threshold diag(ŵ) W instead and map back (the FWSVD metric).
    """
    compute = W.dtype if W.dtype in (torch.float32, torch.float64) else torch.float64
    matrix = W.to(compute)  # float32 weights: float32 SVD (3x faster; a training step's noise
    #                         is far above its rounding)
    if row_weights is not None:
        matrix = row_weights.to(compute)[:, None] * matrix
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    if threshold == "hard":
        kept = s.clone()
        kept[rank:] = 0
    elif threshold == "soft":
        tau = s[rank] if rank < len(s) else s.new_zeros(())
        kept = (s - tau).clamp_min(0)
    else:
        raise ConfigError(f"threshold={threshold!r}; use one of {THRESHOLDS}.")
    result = (u * kept) @ vh
    if row_weights is not None:
        result = result / row_weights.to(compute)[:, None]
    return result.to(W.dtype)


def _cycle(loader: Iterable) -> Iterable:
    return itertools.chain.from_iterable(itertools.repeat(loader))


def _sgd_steps(model: nn.Module, loader: Iterable, config: SVTConfig, after_step=None
               ) -> list[float]:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad],
                                lr=config.lr, momentum=config.momentum)
    losses = []
    model.train()
    for step, (inputs, labels, *_) in zip(range(config.steps), _cycle(loader), strict=False):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(inputs), labels)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if after_step is not None:
            after_step(step)
    model.eval()
    return losses


def svt_finetune(model: nn.Module, loader: Iterable, targets: Mapping[str, int],
                 config: SVTConfig, row_weights: Mapping[str, torch.Tensor] | None = None
                 ) -> tuple[nn.Module, list[float]]:
    """A fine-tuned copy of ``model`` whose weights ``targets`` ({name: rank}) end at rank <= r.

    ``loader`` yields (inputs, labels) and is cycled; ``row_weights`` ({name: (out,)}) selects
    the Fisher-weighted variant. Returns (model, training losses per step).
    """
    result = copy.deepcopy(model)
    params = dict(result.named_parameters())
    unknown = [name for name in targets if name not in params]
    if unknown:
        raise ConfigError(f"targets {unknown[:5]} are not parameters of the model.")
    start = {name: min(params[name].shape[0], params[name][0].numel()) for name in targets}
    decay_steps = int(round(config.decay_fraction * config.steps))

    @torch.no_grad()
    def project(step: int) -> None:
        last = step == config.steps - 1
        if not last and (step + 1) % config.project_every:
            return
        for name, target in targets.items():
            weight = params[name]
            rank = target if last else rank_schedule(start[name], target, step + 1, decay_steps)
            mode = "hard" if last else config.threshold  # end exactly at the target rank
            weights = None if row_weights is None else row_weights[name]
            matrix = threshold_singular_values(weight.reshape(weight.shape[0], -1), rank, mode,
                                               weights)
            weight.copy_(matrix.reshape(weight.shape))

    if decay_steps == 0:  # one-shot schedule: truncate before the first step
        project(-1)
    losses = _sgd_steps(result, loader, config, project)
    return result, losses


def oneshot_finetune(model: nn.Module, loader: Iterable, targets: Mapping[str, int],
                     config: SVTConfig, importance: Mapping[str, torch.Tensor] | None = None
                     ) -> tuple[nn.Module, list[float]]:
    """Truncate once (SVD, or FWSVD given ``importance`` {name: I}), replace the layers by
    LowRank modules and fine-tune their factors (and everything else) for ``config.steps``."""
    params = dict(model.named_parameters())
    factors = {}
    for name, rank in targets.items():
        W = params[name].detach().reshape(params[name].shape[0], -1)
        if importance is None:
            A, B = truncated_svd(W, rank)
        else:
            A, B = fwsvd(W, importance[name].reshape(W.shape), rank)
        factors[name] = (A, B)
    result = factorize_modules(model, factors)
    losses = _sgd_steps(result, loader, config)
    return result, losses
