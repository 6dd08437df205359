"""torch.func fallback for module types without a rule: vmap of a per-sample vjp.

For a module not in ``rules.RULES`` that owns parameters, the importance of every parameter in
its subtree is computed from the module's recorded inputs and output gradients: for each sample
n, ``vjp(params -> module(params, inputs_n))(output_grad_n)`` gives that sample's parameter
gradient; ``torch.func.vmap`` runs it over the batch. Assumptions (documented, checked where
possible): every tensor argument whose first dimension equals the batch size is batched on
dimension 0, others are shared; every tensor output is batched on dimension 0. The module's
forward must be vmap-compatible (no data-dependent Python control flow on tensor values).
Recurrent modules (``nn.RNNBase``: GRU, LSTM, RNN) are batched on dimension 1 unless
``batch_first`` (their states always on 1), and their fused kernels have no vmap rule, so they
take one vjp per sample instead.
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
    num = _batch_size(module, live[0])
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
    num = _batch_size(module, live[0])
    total: dict[str, Tensor] | None = None
    for record in live:
        grads = _per_sample_grads(module, params, frozen, buffers, record, part, num)
        total = grads if total is None else {k: total[k] + grads[k] for k in total}
    assert total is not None  # live is not empty
    return total


def _batch_size(module: nn.Module, record: CallRecord) -> int:
    for (shape, _), dim in zip(record.out_shapes, _output_batch_dims(module, record), strict=True):
        if len(shape) > dim:
            return int(shape[dim])
    raise ConfigError("a module handled by the torch.func fallback returned no batched tensor")


def _rnn_dim(module: nn.Module) -> int:
    """Batch dimension of a recurrent module's input and output sequences."""
    return 0 if getattr(module, "batch_first", False) else 1


def _input_batch_dims(module: nn.Module, leaves: list) -> list[int]:
    """Per flattened argument: the dimension that indexes samples. Recurrent modules (GRU, LSTM,
    RNN) take (L, N, H) sequences unless batch_first, and (layers, N, H) initial states; every
    other module is assumed batched on dimension 0 (the module docstring)."""
    if isinstance(module, nn.RNNBase):
        return [_rnn_dim(module) if index == 0 else 1 for index in range(len(leaves))]
    return [0] * len(leaves)


def _output_batch_dims(module: nn.Module, record: CallRecord) -> list[int]:
    if isinstance(module, nn.RNNBase):  # (output, h_n) or (output, (h_n, c_n))
        return [_rnn_dim(module) if index == 0 else 1 for index in range(len(record.out_shapes))]
    return [0] * len(record.out_shapes)


def _per_sample_grads(module: nn.Module, params: dict[str, Tensor], frozen: dict[str, Tensor],
                      buffers: dict[str, Tensor], record: CallRecord, part: slice,
                      num: int) -> dict[str, Tensor]:
    leaves, spec = tree_flatten((record.args, record.kwargs))
    if isinstance(module, nn.RNNBase) and any(
            isinstance(leaf, nn.utils.rnn.PackedSequence) for leaf in record.args):
        raise ConfigError("packed sequences are not supported by the torch.func fallback")
    in_dims = _input_batch_dims(module, leaves)
    out_dims = _output_batch_dims(module, record)
    batched = [i for i, leaf in enumerate(leaves)
               if isinstance(leaf, Tensor) and leaf.dim() > in_dims[i]
               and leaf.shape[in_dims[i]] == num]
    grads = [g if g is not None else torch.zeros(shape, dtype=dtype)
             for g, (shape, dtype) in zip(record.grads, record.out_shapes, strict=True)]

    def one_sample(batched_leaves: list[Tensor], output_grads: list[Tensor]) -> dict[str, Tensor]:
        call_leaves: list[Any] = list(leaves)
        for index, leaf in zip(batched, batched_leaves, strict=True):
            call_leaves[index] = leaf.unsqueeze(in_dims[index])  # keep a batch of one
        args, kwargs = tree_unflatten(call_leaves, spec)

        def forward(trainable: dict[str, Tensor]) -> tuple[Tensor, ...]:
            outputs = functional_call(module, ({**trainable, **frozen}, buffers), args, kwargs)
            flat = tree_flatten(outputs)[0]
            return tuple(t for t in flat if isinstance(t, Tensor) and t.is_floating_point())

        pullback = vjp(forward, params)[1]
        return pullback(tuple(g.unsqueeze(d) for g, d in zip(output_grads, out_dims,
                                                             strict=True)))[0]

    if isinstance(module, nn.RNNBase):
        # The fused recurrent kernels have no vmap rule: one vjp per sample instead.
        samples = [one_sample([leaves[i].select(in_dims[i], n) for i in batched],
                              [g.to(grads[0].device).select(d, n)
                               for g, d in zip(grads, out_dims, strict=True)])
                   for n in range(num)[part]]
        return {name: torch.stack([sample[name] for sample in samples]) for name in params}
    # Samples on dimension 0 for vmap; one_sample puts each back in its own batch dimension.
    return vmap(one_sample)([leaves[i].movedim(in_dims[i], 0)[part] for i in batched],
                            [g.to(grads[0].device).movedim(d, 0)[part]
                             for g, d in zip(grads, out_dims, strict=True)])
