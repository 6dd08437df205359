"""Temperature "auto" (App. C.3.1): fit T on held-out data, T = argmin NLL(softmax(z/T), y)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from rdcompress.batches import BatchFn, unpack_batch
from rdcompress.errors import ConfigError
from rdcompress.evaluate import fit_temperature  # noqa: F401  (re-exported)


def heldout_logits(model: nn.Module, batches: Iterable, device: torch.device,
                   dtype: torch.dtype, batch_fn: BatchFn | None = None) -> tuple[Tensor, Tensor]:
    """Run ``model`` without gradients over (inputs, labels) batches: (N, C) logits, (N,) labels.

    Batches are read by ``rdcompress.batches.unpack_batch`` (``batch_fn`` for other layouts)."""
    all_logits, all_labels = [], []
    with torch.no_grad():
        for batch in batches:
            inputs, labels = unpack_batch(batch, batch_fn)
            if labels is None:
                raise ConfigError("temperature='auto' needs a held-out loader yielding "
                                  "(inputs, labels) batches (or batch_fn returning labels)")
            all_logits.append(inputs.to(device, dtype)(model).float().cpu())
            all_labels.append(labels.cpu())
    if not all_logits:
        raise ConfigError("the held-out loader for temperature='auto' yielded no batches")
    return torch.cat(all_logits), torch.cat(all_labels)
