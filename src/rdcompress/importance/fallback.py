"""torch.func fallback for module types without a rule: vmap of a per-sample vjp.

For a module not in ``rules.RULES`` that owns parameters, the importance of every parameter in
its subtree is computed from the module's recorded inputs and output gradients: for each sample
n, ``vjp(params -> module(params, inputs_n))(output_grad_n)`` gives that sample's parameter
gradient; ``torch.func.vmap`` runs it over the batch. Assumptions (documented, checked where
possible): every tensor argument whose first dimension equals the batch size is batched on
dimension 0, others are shared; every tensor output is batched on dimension 0. The module's
forward must be vmap-compatible (no data-dependent Python control flow on tensor values).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp, vmap
from torch.utils._pytree import tree_flatten, tree_unflatten

from rdcompress.errors import ConfigError

FALLBACK_MAX_ELEMENTS = 1 << 23  # per-sample gradient entries materialized at once


@dataclass
class CallRecord:
    """One call of a tracked module in the current forward pass."""

    args: tuple                        # positional inputs, detached
    kwargs: dict                       # keyword inputs, detached
    out_shapes: list[tuple[torch.Size, torch.dtype]]  # float tensor outputs, flattened order
    grads: list[Tensor | None] = field(default_factory=list)  # d scalars / d output, per output
    input_requires_grad: bool = False  # does the input depend on trainable parameters?
    input_version: int | None = None   # version counter of args[0] when recorded


def fallback_squares(module: nn.Module, records: Sequence[CallRecord],
                     names: Sequence[str]) -> dict[str, Tensor]:
    """``{name: sum_n (d s_n / d param)^2}`` for the named (recursive) parameters of module."""
    live = [r for r in records if any(g is not None for g in r.grads)]
    if not live:
        return {}
    all_params = dict(module.named_parameters())
    num = _batch_size(live[0])
    per_sample_numel = sum(all_params[name].numel() for name in names)
    step = max(1, FALLBACK_MAX_ELEMENTS // max(1, per_sample_numel))
    out = {name: torch.zeros_like(all_params[name].detach()) for name in names}
    for start in range(0, num, step):
        grads = fallback_per_sample(module, live, names, slice(start, min(start + step, num)))
        for name, grad in grads.items():
            out[name] += grad.square_().sum(0)
    return out


def fallback_per_sample(module: nn.Module, records: Sequence[CallRecord], names: Sequence[str],
                        part: slice) -> dict[str, Tensor]:
    """``{name: (n, *shape)}``: the samples ``part``'s gradients, summed over the records.

    ``names`` are local names from ``module.named_parameters()`` (one per tensor: functional_call
    ties the other names of a tied tensor to it)."""
    live = [r for r in records if any(g is not None for g in r.grads)]
    if not live:
        return {}
    all_params = dict(module.named_parameters())
    params = {name: all_params[name].detach() for name in names}
    frozen = {name: p.detach() for name, p in all_params.items() if name not in params}
    buffers = dict(module.named_buffers())
    num = _batch_size(live[0])
    total: dict[str, Tensor] | None = None
    for record in live:
        grads = _per_sample_grads(module, params, frozen, buffers, record, part, num)
        total = grads if total is None else {k: total[k] + grads[k] for k in total}
    assert total is not None  # live is not empty
    return total


def _batch_size(record: CallRecord) -> int:
    for shape, _ in record.out_shapes:
        if len(shape) > 0:
            return int(shape[0])
    raise ConfigError("a module handled by the torch.func fallback returned no batched tensor")


def _per_sample_grads(module: nn.Module, params: dict[str, Tensor], frozen: dict[str, Tensor],
                      buffers: dict[str, Tensor], record: CallRecord, part: slice,
                      num: int) -> dict[str, Tensor]:
    leaves, spec = tree_flatten((record.args, record.kwargs))
    batched = [i for i, leaf in enumerate(leaves)
               if isinstance(leaf, Tensor) and leaf.dim() > 0 and leaf.shape[0] == num]
    grads = [g if g is not None else torch.zeros(shape, dtype=dtype)
             for g, (shape, dtype) in zip(record.grads, record.out_shapes, strict=True)]

    def one_sample(batched_leaves: list[Tensor], output_grads: list[Tensor]) -> dict[str, Tensor]:
        call_leaves: list[Any] = list(leaves)
        for index, leaf in zip(batched, batched_leaves, strict=True):
            call_leaves[index] = leaf.unsqueeze(0)  # keep a batch of one
        args, kwargs = tree_unflatten(call_leaves, spec)

        def forward(trainable: dict[str, Tensor]) -> tuple[Tensor, ...]:
            outputs = functional_call(module, ({**trainable, **frozen}, buffers), args, kwargs)
            flat = tree_flatten(outputs)[0]
            return tuple(t for t in flat if isinstance(t, Tensor) and t.is_floating_point())

        pullback = vjp(forward, params)[1]
        return pullback(tuple(g.unsqueeze(0) for g in output_grads))[0]

    return vmap(one_sample)([leaves[i][part] for i in batched],
                            [g.to(grads[0].device)[part] for g in grads])
