"""One way in for DataLoader batches: ``unpack_batch(batch, batch_fn) -> (ModelInputs, labels)``.

Default reading (``batch_fn=None``):

- a tensor: the model's only input, no labels;
- a dict (e.g. a tokenizer's ``BatchEncoding``): ``model(**batch)``, labels popped from key
  ``"labels"`` if present;
- a tuple or list ``(inputs, labels, ...)`` whose first element is a tensor and whose second is
  label-like: integer class indices of shape (N,), or floating targets with N rows (N = the
  inputs' first dimension); elements after the second are ignored, as before;
- a 1-tuple ``(inputs,)`` or ``(inputs, None)``: no labels.

Anything else is ambiguous and refused: an ``(ids, mask)`` pair, for instance, would otherwise be
read as ``(inputs, labels)`` and the mask dropped. For such batches pass
``batch_fn(batch) -> (args, labels)``, where ``args`` is a tuple of positional model inputs or a
dict of keyword inputs (a bare tensor means one positional input) and ``labels`` a tensor or
None. Example for (ids, mask, labels) batches:
``batch_fn=lambda b: ({"input_ids": b[0], "attention_mask": b[1]}, b[2])``.

The batch size N is the first dimension of the first input tensor. Every tensor whose first
dimension is N is treated as batched on dimension 0; other tensors (e.g. ``position_ids`` of
shape (1, L)) are shared by all samples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_map

from rdcompress.errors import ConfigError

BatchFn = Callable[[Any], tuple[Any, Any]]

_HOW = ("pass batch_fn=lambda batch: (model_args, labels), where model_args is a tuple of "
        "positional inputs or a dict of keyword inputs and labels a tensor or None "
        "(see rdcompress.batches)")


@dataclass(frozen=True)
class ModelInputs:
    """What one batch feeds the model: ``model(*args, **kwargs)``."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def __call__(self, model: nn.Module) -> Any:
        return model(*self.args, **self.kwargs)

    def tensors(self) -> list[Tensor]:
        return [t for t in tree_flatten((self.args, self.kwargs))[0] if isinstance(t, Tensor)]

    @property
    def batch_size(self) -> int:
        """N: the first dimension of the first tensor (positional first, then keywords)."""
        for tensor in self.tensors():
            if tensor.dim() > 0:
                return int(tensor.shape[0])
        raise ConfigError("the batch holds no tensor with a batch dimension; "
                          f"the model inputs were {self._describe()}. {_HOW}")

    @property
    def single(self) -> Tensor | None:
        """The input tensor when the model takes exactly one positional tensor, else None."""
        if len(self.args) == 1 and not self.kwargs and isinstance(self.args[0], Tensor):
            return self.args[0]
        return None

    def map(self, fn: Callable[[Tensor], Tensor]) -> ModelInputs:
        """Apply ``fn`` to every tensor (other values kept)."""
        def apply(value: object) -> object:
            return fn(value) if isinstance(value, Tensor) else value
        return ModelInputs(tree_map(apply, self.args), tree_map(apply, self.kwargs))

    def rows(self, start: int, stop: int) -> ModelInputs:
        """Samples start:stop of the tensors batched on dimension 0; shared tensors kept."""
        size = self.batch_size
        return self.map(lambda t: t[start:stop] if t.dim() > 0 and t.shape[0] == size else t)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ModelInputs:
        """Move to ``device``; floating tensors also cast to ``dtype`` when given."""
        return self.map(lambda t: t.to(device, dtype) if dtype is not None
                        and t.is_floating_point() else t.to(device))

    def _describe(self) -> str:
        return _describe((self.args, self.kwargs))


def unpack_batch(batch: Any, batch_fn: BatchFn | None = None) -> tuple[ModelInputs, Tensor | None]:
    """``(model inputs, labels or None)`` of one DataLoader batch (see the module docstring)."""
    if batch_fn is not None:
        return _from_batch_fn(batch_fn(batch))
    if isinstance(batch, Tensor):
        return ModelInputs((batch,)), None
    if isinstance(batch, Mapping):
        kwargs = dict(batch)
        labels = kwargs.pop("labels", None)
        if labels is not None and not isinstance(labels, Tensor):
            raise ConfigError(f"the batch's 'labels' entry is {type(labels).__name__}, not a "
                              f"tensor; {_HOW}")
        return ModelInputs((), kwargs), labels
    if isinstance(batch, list | tuple) and batch:
        inputs = batch[0]
        if not isinstance(inputs, Tensor):
            raise ConfigError(f"the batch's first element is {_describe(inputs)}, not an input "
                              f"tensor; for models with several inputs {_HOW}")
        if len(batch) == 1 or batch[1] is None:  # (inputs,) or (inputs, None): no labels
            return ModelInputs((inputs,)), None
        labels = batch[1]
        if not _label_like(labels, inputs):
            raise ConfigError(
                f"ambiguous batch {_describe(batch)}: the second element is not labels "
                f"(integer class indices of shape ({_rows(inputs)},) or floating targets with "
                f"{_rows(inputs)} rows), so it may be a second model input such as an attention "
                f"mask, which would be dropped. {_HOW}")
        return ModelInputs((inputs,)), labels
    raise ConfigError(f"the loader yielded {_describe(batch)}; expected a tensor, an (inputs, "
                      f"labels) tuple or a dict of model inputs. {_HOW}")


def _from_batch_fn(result: Any) -> tuple[ModelInputs, Tensor | None]:
    if not isinstance(result, tuple) or len(result) != 2:
        raise ConfigError(f"batch_fn must return (model_args, labels), got {_describe(result)}")
    model_args, labels = result
    if labels is not None and not isinstance(labels, Tensor):
        raise ConfigError(f"batch_fn returned labels of type {type(labels).__name__}; "
                          "expected a tensor or None")
    if isinstance(model_args, Tensor):
        inputs = ModelInputs((model_args,))
    elif isinstance(model_args, Mapping):
        inputs = ModelInputs((), dict(model_args))
    elif isinstance(model_args, list | tuple):
        inputs = ModelInputs(tuple(model_args))
    else:
        raise ConfigError(f"batch_fn returned model_args of type {type(model_args).__name__}; "
                          "expected a tuple of positional inputs, a dict or a tensor")
    if not inputs.tensors():
        raise ConfigError(f"batch_fn returned no tensor among the model inputs: "
                          f"{inputs._describe()}")
    return inputs, labels


def _rows(tensor: Tensor) -> int | str:
    return int(tensor.shape[0]) if tensor.dim() > 0 else "N"


def _label_like(labels: object, inputs: Tensor) -> bool:
    if not isinstance(labels, Tensor) or labels.dim() == 0 or inputs.dim() == 0:
        return False
    if labels.shape[0] != inputs.shape[0]:
        return False
    if labels.is_floating_point():
        return True        # regression targets with one row per sample
    # Integer: class indices (N,). An (N, L) integer tensor looks like ids or a mask.
    return labels.dim() == 1 and labels.dtype != torch.bool


def _describe(value: object) -> str:
    if isinstance(value, Tensor):
        return f"tensor {str(value.dtype).removeprefix('torch.')} {tuple(value.shape)}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        inner = ", ".join(_describe(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    return type(value).__name__
