"""Temperature "auto" (App. C.3.1): fit T on held-out data, T = argmin NLL(softmax(z/T), y)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from rdcompress.errors import ConfigError


def fit_temperature(logits: Tensor, labels: Tensor) -> float:
    """Use ``rdcompress.evaluate.fit_temperature`` when it exists, else the local fit."""
    try:
        from rdcompress.evaluate import fit_temperature as shared_fit
    except ImportError:
        return _fit_temperature(logits, labels)
    return float(shared_fit(logits, labels))


def _fit_temperature(logits: Tensor, labels: Tensor, iterations: int = 80) -> float:
    """Golden-section search over log T in [log 0.05, log 100] of the mean NLL.

    NLL(1/T) is convex in 1/T (a log-sum-exp of linear functions), so it is unimodal in log T.
    """
    logits, labels = logits.detach().double(), labels.detach().long()

    def nll(log_t: float) -> float:
        return float(nn.functional.cross_entropy(logits / math.exp(log_t), labels))

    low, high = math.log(0.05), math.log(100.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = nll(a), nll(b)
    for _ in range(iterations):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return math.exp((low + high) / 2)


def heldout_logits(model: nn.Module, batches: Iterable, device: torch.device,
                   dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Run ``model`` without gradients over (inputs, labels) batches: (N, C) logits, (N,) labels."""
    all_logits, all_labels = [], []
    with torch.no_grad():
        for batch in batches:
            if not isinstance(batch, list | tuple) or len(batch) < 2:
                raise ConfigError("temperature='auto' needs a held-out loader yielding "
                                  "(inputs, labels) batches")
            all_logits.append(model(batch[0].to(device, dtype)).float().cpu())
            all_labels.append(batch[1].cpu())
    if not all_logits:
        raise ConfigError("the held-out loader for temperature='auto' yielded no batches")
    return torch.cat(all_logits), torch.cat(all_labels)
