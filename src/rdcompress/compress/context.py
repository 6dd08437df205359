"""What a method handler may use: the layers, the model, the calibration data, the assembler.

``compress()`` builds one ``Context`` per call and hands it to the method's handler
(``handler(ctx, config)``, see registry.MethodSpec). A method that only maps layers to layers
reads ``ctx.layers``; one that needs the model's outputs or inputs (randomized greedy, whitened
low rank, allocation to a measured distortion) reads ``ctx.model`` (never modifying it) and
``ctx.calibration``. Input second moments are computed on first use and cached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from rdcompress.compress._layers import LayerInput, LayerResult
from rdcompress.errors import ConfigError

MOMENT_KEY = "input_moment"  # LayerInput.statistics key of E[x xᵀ] (d, d)


@dataclass
class Context:
    model: nn.Module  # the original model: read it, never modify it (deep-copy to work on it)
    layers: list[LayerInput]  # the layers to compress, in order, with their importances
    objective: str  # the importance objective ("baseline" when none was given)
    coder: str  # the entropy coder of the file
    assemble: Callable[..., Any]  # (results, config, objective=None) -> CompressedModel
    calibration: Any = None  # a DataLoader of held-out (inputs, labels) batches
    batch_fn: Callable | None = None  # how to read a batch (rdcompress.batches.unpack_batch)
    cache: dict | None = None  # the caller's dict for work reused across calls (or None)

    def require_calibration(self, why: str) -> Any:
        if self.calibration is None:
            raise ConfigError(f"{why} needs calibration data: pass calibration=<a DataLoader "
                              "of held-out (inputs, labels) batches>.")
        return self.calibration

    def fill_input_moments(self) -> None:
        """Give every layer lacking it its input second moment E[x xᵀ] (``MOMENT_KEY``),
        collected by hooks on the calibration data (cached in ``cache`` by loader)."""
        missing = [layer for layer in self.layers if MOMENT_KEY not in layer.statistics]
        if not missing or self.calibration is None:  # the method names what is missing
            return
        from rdcompress.lowrank.moments import collect_input_moments

        loader = self.calibration
        key = ("input_moments", id(loader))
        cache = self.cache if self.cache is not None else {}
        if key not in cache:
            moments = collect_input_moments(self.model, loader, batch_fn=self.batch_fn)
            cache[key] = (loader, moments.layer_statistics())  # the loader keeps id() unique
        statistics = cache[key][1]
        for layer in missing:
            layer.statistics.update(statistics.get(layer.name, {}))


def results_or_model(output: Any, ctx: Context, config: Any) -> Any:
    """A handler's output as a CompressedModel: layer results are assembled."""
    if isinstance(output, dict):
        return ctx.assemble(output, config)
    return output


__all__ = ["Context", "LayerResult", "MOMENT_KEY", "results_or_model"]
