"""What a model-level method handler may use: the model, its layers, data, and the assembler.

Most methods map layers to layers (``handler(layers, config)``, registry.HANDLERS) and never see
the model. A method that must look at the whole model — measure the file it writes, or the
model's outputs on calibration data (allocation to a target) — is registered in
``registry.MODEL_HANDLERS`` and gets a ``Context``: ``handler(ctx, config) -> CompressedModel``.
A config declares what it needs from the caller with a ``needs`` property (e.g.
``{"calibration"}``); ``compress()`` checks it before any work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from rdcompress.compress._layers import LayerInput, LayerResult


@dataclass
class Context:
    model: nn.Module  # the original model: read it, never modify it
    layers: list[LayerInput]  # the layers to compress, with their importances
    objective: str  # the importance objective ("baseline" when none was given)
    coder: str  # the entropy coder of the file
    assemble: Callable[[dict[str, LayerResult], Any], Any]  # (results, config) -> CompressedModel
    calibration: Any = None  # a DataLoader of held-out (inputs, labels) batches
    batch_fn: Callable | None = None  # how to read a batch (rdcompress.batches.unpack_batch)
    cache: dict | None = None  # the caller's dict for work reused across calls (or None)


def needs_of(config: Any) -> set[str]:
    """What ``config`` needs from the caller beyond the model and importance."""
    return set(getattr(config, "needs", ()) or ())
