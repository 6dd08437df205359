"""Per-layer-type rules: sum over samples of squared per-sample gradients, from hooks' data.

A rule gets a module and its calls in one forward pass, each call a pair ``(x, g)``: the layer
input ``x`` (batch first) and the gradient ``g`` of the per-sample scalars with respect to the
layer output. In eval mode samples are independent, so row n of ``g`` is sample n's own output
gradient. The rule returns ``{param_name: sum_n (d s_n / d param)^2}`` for the module's direct
parameters. A module called several times (weight sharing, sequences) has its per-sample
gradient summed over calls and positions BEFORE squaring.

Linear and Conv need one matmul per layer: ``(g^2)^T (x^2)`` when a sample has one position,
else a batched ``g_n^T x_n`` over positions (Conv: one grouped weight-gradient convolution, see
``per_sample.conv_weight_per_sample``), chunked over samples so that at most ``MAX_ELEMENTS``
per-sample gradient entries exist at once. Normalization layers square ``per_sample``'s
gradients; Embedding stays sparse.

Types not in ``RULES`` fall back to torch.func (see ``fallback.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn

from rdcompress.importance.per_sample import (
    Call,
    RuleCache,
    batchnorm_per_sample,
    conv_padded_calls,
    conv_weight_per_sample,
    groupnorm_per_sample,
    layernorm_per_sample,
    linear_per_sample,
)

Rule = Callable[..., dict[str, Tensor]]  # (module, calls, cache=None) -> {param: sum_n grad^2}

MAX_ELEMENTS = 1 << 23  # per-sample gradient entries materialized at once (32 MiB in float32)
# Conv blocks: per-sample weight gradients plus the inputs and output gradients they read, kept
# cache-sized (4 MiB f32) so that squaring and summing re-read them from cache: on ResNet-20
# (1 CPU thread, 128-sample chunks) 10-35% faster per layer than one block per chunk.
CONV_BLOCK_ELEMENTS = 1 << 20


def sample_chunks(num_samples: int, per_sample: int,
                  budget: int | None = None) -> Iterator[slice]:
    """Slices of at most ``budget`` (default MAX_ELEMENTS, never more) // per_sample samples."""
    limit = MAX_ELEMENTS if budget is None else min(budget, MAX_ELEMENTS)
    step = max(1, limit // max(1, per_sample))
    for start in range(0, num_samples, step):
        yield slice(start, min(start + step, num_samples))


def _squares_of_per_sample(per_sample: dict[str, Tensor]) -> dict[str, Tensor]:
    """{name: (N, *shape)} -> {name: sum_n grad_n^2}."""
    return {name: (grad * grad).sum(0) for name, grad in per_sample.items()}


def linear_from_squared_grads(module: nn.Module, x: Tensor, g2: Tensor) -> dict[str, Tensor]:
    """One position per sample: grad_n = g_n x_n^T, so sum_n grad_n^2 = (g^2)^T (x^2).

    Separable: ``g2`` (N, out) may already be a sum of g^2 over several directions (exact
    fisher: C - 1 backward passes, one matmul).
    """
    out = {"weight": g2.t() @ (x * x)}  # (out, in)
    if module.bias is not None:
        out["bias"] = g2.sum(0)
    return out


def linear_rule(module: nn.Module, calls: Sequence[Call],
                cache: RuleCache | None = None) -> dict[str, Tensor]:
    assert isinstance(module, nn.Linear)
    if len(calls) == 1 and calls[0][0].dim() == 2:
        x, g = calls[0]  # (N, in), (N, out): one position per sample
        return linear_from_squared_grads(module, x, g * g)
    num = calls[0][0].shape[0]
    out = {name: torch.zeros_like(p, dtype=calls[0][1].dtype)
           for name, p in module.named_parameters(recurse=False)}
    for part in sample_chunks(num, module.weight.numel()):
        per_sample = linear_per_sample(module, [(x[part], g[part]) for x, g in calls])
        for name, grad in per_sample.items():  # (n, out, in), (n, out)
            out[name] += grad.square_().sum(0)
    return out


def conv_rule(module: nn.Module, calls: Sequence[Call],
              cache: RuleCache | None = None) -> dict[str, Tensor]:
    """sum_n (grad_n)^2 for Conv1d/Conv2d, grad_n summed over calls before squaring."""
    assert isinstance(module, nn.Conv1d | nn.Conv2d)
    num = calls[0][0].shape[0]
    padded, padding = conv_padded_calls(module, calls, cache)
    weight_sq = torch.zeros_like(module.weight, dtype=calls[0][1].dtype)
    per_sample_elements = module.weight.numel() + sum(
        x[0].numel() + g[0].numel() for x, g in padded)  # read and written per sample
    for part in sample_chunks(num, per_sample_elements, CONV_BLOCK_ELEMENTS):
        per_sample = conv_weight_per_sample(module, padded[0][0][part], padding,
                                            padded[0][1][part])  # (n, *weight.shape), fresh
        for x, g in padded[1:]:
            per_sample += conv_weight_per_sample(module, x[part], padding, g[part])
        weight_sq += per_sample.square_().sum(0)
    out = {"weight": weight_sq}
    if module.bias is not None:
        bias_grad = calls[0][1].reshape(num, calls[0][1].shape[1], -1).sum(2)  # (N, C_out)
        for _, g in calls[1:]:
            bias_grad += g.reshape(num, g.shape[1], -1).sum(2)
        out["bias"] = (bias_grad * bias_grad).sum(0)
    return out


def batchnorm_rule(module: nn.Module, calls: Sequence[Call],
                   cache: RuleCache | None = None) -> dict[str, Tensor]:
    return _squares_of_per_sample(batchnorm_per_sample(module, calls, cache))


def layernorm_rule(module: nn.Module, calls: Sequence[Call],
                   cache: RuleCache | None = None) -> dict[str, Tensor]:
    return _squares_of_per_sample(layernorm_per_sample(module, calls, cache))


def groupnorm_rule(module: nn.Module, calls: Sequence[Call],
                   cache: RuleCache | None = None) -> dict[str, Tensor]:
    return _squares_of_per_sample(groupnorm_per_sample(module, calls, cache))


def embedding_rule(module: nn.Module, calls: Sequence[Call],
                   cache: RuleCache | None = None) -> dict[str, Tensor]:
    """Per sample, row v's gradient is the sum of g over positions holding index v.

    Sparse: only the (sample, index) pairs that occur are formed. Like autograd, the row
    ``padding_idx`` gets no gradient. ``scale_grad_by_freq`` (an optimizer heuristic) is ignored:
    this is the derivative of the output.
    """
    assert isinstance(module, nn.Embedding)
    vocab, dim = module.weight.shape
    num = calls[0][0].shape[0]
    indices = torch.cat([x.reshape(num, -1) for x, _ in calls], 1)  # (N, T)
    grads = torch.cat([g.reshape(num, -1, dim) for _, g in calls], 1)  # (N, T, D)
    sample = torch.arange(num, device=indices.device).view(-1, 1).expand_as(indices)
    keys = (sample * vocab + indices).reshape(-1)  # (N*T,) one key per (sample, row)
    unique, inverse = torch.unique(keys, return_inverse=True)
    summed = grads.new_zeros(unique.numel(), dim).index_add_(0, inverse, grads.reshape(-1, dim))
    weight_sq = grads.new_zeros(vocab, dim).index_add_(0, unique % vocab, summed * summed)
    if module.padding_idx is not None:
        weight_sq[module.padding_idx] = 0
    return {"weight": weight_sq}


# Exact types only (a subclass may change forward): anything else goes to the torch.func fallback.
RULES: dict[type[nn.Module], Rule] = {
    nn.Linear: linear_rule,
    nn.Conv1d: conv_rule,
    nn.Conv2d: conv_rule,
    nn.BatchNorm1d: batchnorm_rule,
    nn.BatchNorm2d: batchnorm_rule,
    nn.BatchNorm3d: batchnorm_rule,
    nn.LayerNorm: layernorm_rule,
    nn.GroupNorm: groupnorm_rule,
    nn.Embedding: embedding_rule,
}


def rule_for(module: nn.Module) -> Rule | None:
    return RULES.get(type(module))
