"""Input second moments E[x xᵀ] of Linear and Conv2d layers, streamed GPTQ-style with hooks.

>>> moments = InputMoments(model)          # hooks every supported layer
>>> for x, _ in loader: model(x)
>>> stats = moments.layer_statistics()     # {"fc.weight": {"input_moment": (d, d)}}
>>> moments.free()

A Linear layer's x is its input row (d = in_features); a Conv2d layer's x is one unfolded
input patch (d = in·kh·kw, channel-major like ``weight.reshape(out, -1)``), one per output
position. Sums (float64) and counts are kept, so moments from several passes ``merge``.
Grouped convolutions and string padding are not supported (a ConfigError names the layer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from rdcompress.batches import BatchFn, unpack_batch
from rdcompress.errors import ConfigError


def _linear_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])  # (N·..., in)


def _conv_rows(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    patches = F.unfold(x, module.kernel_size, dilation=module.dilation,  # type: ignore[arg-type]
                       padding=module.padding, stride=module.stride)  # type: ignore[arg-type]
    return patches.transpose(1, 2).reshape(-1, patches.shape[1])  # (N·L, in·kh·kw)


def _check_conv(name: str, module: nn.Module) -> None:
    if module.groups != 1 or isinstance(module.padding, str) or module.padding_mode != "zeros":
        raise ConfigError(
            f"conv {name!r} has groups={module.groups}, padding={module.padding!r}, "
            f"padding_mode={module.padding_mode!r}; input moments support groups=1 with integer "
            "zero padding only. Pass names= without it."
        )


# module type -> (layer input (..., features) -> rows (n, d), validity check)
ROWS: dict[type, tuple[Callable, Callable | None]] = {
    nn.Linear: (_linear_rows, None),
    nn.Conv2d: (_conv_rows, _check_conv),
}


class InputMoments:
    """Streams Σ x xᵀ and counts per layer; keys are weight names (``"<module>.weight"``)."""

    def __init__(self, model: nn.Module | None = None, names: Iterable[str] | None = None
                 ) -> None:
        self.sums: dict[str, torch.Tensor] = {}  # (d, d) float64
        self.counts: dict[str, int] = {}
        self._handles: list = []
        if model is not None:
            self.attach(model, names)

    def attach(self, model: nn.Module, names: Iterable[str] | None = None) -> InputMoments:
        wanted = None if names is None else set(names)
        found = set()
        for module_name, module in model.named_modules():
            weight_name = f"{module_name}.weight" if module_name else "weight"
            if wanted is not None and weight_name not in wanted:
                continue
            entry = ROWS.get(type(module))
            if entry is None:
                continue
            if entry[1] is not None:
                entry[1](weight_name, module)
            found.add(weight_name)
            self._handles.append(module.register_forward_pre_hook(self._hook(weight_name,
                                                                             entry[0])))
        missing = sorted((wanted or set()) - found)
        if missing:
            raise ConfigError(f"no Linear/Conv2d layer owns the weights {missing[:5]}; input "
                              f"moments exist for {sorted(found)[:10]}.")
        return self

    def _hook(self, name: str, rows_of: Callable) -> Callable:
        def hook(module: nn.Module, inputs: tuple) -> None:
            self.add_batch(name, rows_of(module, inputs[0].detach()))
        return hook

    def add_batch(self, name: str, rows: torch.Tensor) -> None:
        """Add (n, d) input rows of layer ``name``."""
        rows = rows.to("cpu", torch.float64)
        update = rows.T @ rows  # (d, d)
        if name in self.sums:
            self.sums[name] += update
            self.counts[name] += rows.shape[0]
        else:
            self.sums[name], self.counts[name] = update, rows.shape[0]

    def merge(self, other: InputMoments) -> InputMoments:
        for name, total in other.sums.items():
            if name in self.sums:
                self.sums[name] = self.sums[name] + total
                self.counts[name] += other.counts[name]
            else:
                self.sums[name], self.counts[name] = total.clone(), other.counts[name]
        return self

    def moments(self) -> dict[str, torch.Tensor]:
        """{weight name: E[x xᵀ] (d, d) float64}."""
        return {name: total / self.counts[name] for name, total in self.sums.items()
                if self.counts[name] > 0}

    def layer_statistics(self) -> dict[str, dict[str, torch.Tensor]]:
        """For ``compress(layer_statistics=...)``: {name: {"input_moment": (d, d)}}."""
        return {name: {"input_moment": moment} for name, moment in self.moments().items()}

    def free(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


@torch.no_grad()
def collect_input_moments(model: nn.Module, loader: Iterable, names: Iterable[str] | None = None,
                          max_batches: int | None = None,
                          batch_fn: BatchFn | None = None) -> InputMoments:
    """Run ``model`` (eval mode) over ``loader`` ((inputs, ...) batches, bare inputs or dicts;
    ``batch_fn`` for other layouts, see ``rdcompress.batches``)."""
    moments = InputMoments(model, names)
    was_training = model.training
    model.eval()
    try:
        for index, batch in enumerate(loader):
            if max_batches is not None and index >= max_batches:
                break
            unpack_batch(batch, batch_fn)[0](model)
    finally:
        moments.free()
        model.train(was_training)
    if not moments.counts:
        raise ConfigError("the calibration loader gave no batches; input moments need data.")
    return moments
