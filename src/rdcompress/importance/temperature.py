"""Temperature "auto" (App. C.3.1): fit T on held-out data, T = argmin NLL(softmax(z/T), y)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from rdcompress.errors import ConfigError
from rdcompress.evaluate import fit_temperature  # noqa: F401  (re-exported)


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
