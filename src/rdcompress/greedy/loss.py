"""The calibration loss L of the greedy scores, and its curvature in the model's outputs.

L is the mean over the calibration samples: cross-entropy of the logits (N, C) against integer
labels (N,), or the mean squared error F.mse_loss(f, y) (mean over samples and outputs).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F

from rdcompress.batches import BatchFn, unpack_batch
from rdcompress.errors import ConfigError, NonFiniteError


def collect_calibration(loader: Iterable, dtype: torch.dtype, batch_fn: BatchFn | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """All (inputs, targets) of ``loader`` concatenated; floating inputs cast to ``dtype``.

    Batches are read by ``rdcompress.batches.unpack_batch`` (``batch_fn`` for other layouts);
    greedy compression needs one input tensor per batch, and targets."""
    inputs, targets = [], []
    for batch in loader:
        if isinstance(batch, torch.Tensor) and batch_fn is None:
            raise ConfigError(f"the calibration loader must yield (inputs, targets) batches, got "
                              f"{type(batch).__name__}; wrap tensors in rdcompress.pipeline."
                              "tensor_loader(inputs, targets).")
        model_inputs, target = unpack_batch(batch, batch_fn)
        if model_inputs.single is None or target is None:
            raise ConfigError(f"greedy compression needs (inputs, targets) batches with one input "
                              f"tensor, got {len(model_inputs.tensors())} model input tensor(s) "
                              f"and {'no' if target is None else 'some'} targets; wrap tensors "
                              "in rdcompress.pipeline.tensor_loader(inputs, targets).")
        inputs.append(model_inputs.single)
        targets.append(target)
    if not inputs:
        raise ConfigError("the calibration loader yielded no batches; give it some samples.")
    x, y = torch.cat(inputs), torch.cat(targets)
    if x.is_floating_point():
        x = x.to(dtype)
    if not torch.isfinite(x).all():
        raise NonFiniteError("the calibration inputs hold NaN/inf values.")
    return x, y


def resolve_loss(loss: str, targets: torch.Tensor) -> str:
    """"auto" -> "cross-entropy" for integer targets, "mse" for floating ones."""
    if loss != "auto":
        return loss
    return "mse" if targets.is_floating_point() else "cross-entropy"


def batch_loss(outputs: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """Scalar mean loss. outputs: (N, C); targets: (N,) labels, or floats of outputs' numel."""
    if loss == "cross-entropy":
        return F.cross_entropy(outputs, targets)
    return F.mse_loss(outputs, targets.reshape(outputs.shape).to(outputs.dtype))


def check_targets(outputs: torch.Tensor, targets: torch.Tensor, loss: str) -> None:
    """ConfigError when targets do not fit the outputs under ``loss``."""
    if outputs.ndim != 2:
        raise ConfigError(f"the model's outputs have shape {tuple(outputs.shape)}; greedy "
                          "compression expects (N, C) logits or regression outputs.")
    if loss == "cross-entropy":
        if targets.is_floating_point() or targets.ndim != 1 or len(targets) != len(outputs):
            raise ConfigError(f"cross-entropy needs (N,)={len(outputs)} integer labels, got "
                              f"{targets.dtype} {tuple(targets.shape)}; use loss='mse' for "
                              "regression targets.")
        if len(targets) and (targets.min() < 0 or targets.max() >= outputs.shape[1]):
            raise ConfigError(f"labels span [{int(targets.min())}, {int(targets.max())}] but "
                              f"the model has {outputs.shape[1]} outputs.")
    elif targets.numel() != outputs.numel():
        raise ConfigError(f"mse needs targets with the outputs' {outputs.numel()} elements "
                          f"{tuple(outputs.shape)}, got {tuple(targets.shape)}.")


def output_hessian_factor(outputs: torch.Tensor, loss: str) -> torch.Tensor:
    """S (N, C, K) with S_n S_nᵀ = ∂²L/∂f_n² for the *mean* loss L (K = C).

    cross-entropy: (diag(p_n) − p_n p_nᵀ)/N, column k = √p_nk (e_k − p_n)/√N;
    mse: 2/(N·C) I, S = √(2/(N·C)) I.
    """
    n, c = outputs.shape
    if loss == "cross-entropy":
        p = torch.softmax(outputs, dim=1)  # (N, C)
        root = p.sqrt()
        factor = torch.diag_embed(root) - p.unsqueeze(2) * root.unsqueeze(1)  # (N, C, C)
        return factor / math.sqrt(n)
    eye = torch.eye(c, dtype=outputs.dtype).expand(n, c, c)
    return eye * math.sqrt(2.0 / (n * c))
