"""Per-sample parameter gradients of one layer, from its calls' inputs and output gradients.

A call is a pair ``(x, g)``: the layer input ``x`` (batch first) and the gradient ``g`` of the
per-sample scalars with respect to the layer output (in eval mode row n of ``g`` is sample n's
own). Each function of ``PER_SAMPLE`` returns ``{local param name: (N, *param.shape)}``, the
gradient of each sample summed over the module's calls and positions. ``rules.py`` squares and
sums these (with faster special cases that never form them); tied parameters (one tensor in
several modules, ``capture.py``) need them unsquared, to add every use before squaring.

Pure tensor functions of (module, calls); ``cache`` lets the caller keep call-derived tensors
(x_hat, padded inputs) across the backward passes of one forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdcompress.errors import ConfigError

Call = tuple[Tensor, Tensor]  # (layer input x, gradient wrt layer output g), batch first
# Call-derived tensors reused by the next backward pass over the same forward (exact fisher:
# one pass per class), keyed by (kind, call index); the caller empties it with the records.
RuleCache = dict[tuple[str, int], Tensor]
PerSample = Callable[..., dict[str, Tensor]]  # (module, calls, cache=None) -> {name: (N, ...)}

CACHE_ELEMENTS = 1 << 26  # call-derived tensors kept across directions, per site (256 MiB f32)


def cached(cache: RuleCache | None, key: tuple[str, int], make: Callable[[], Tensor]) -> Tensor:
    """``make()``, memoized in ``cache`` while the cache holds under CACHE_ELEMENTS entries."""
    if cache is None:
        return make()
    value = cache.get(key)
    if value is None:
        value = make()
        if sum(t.numel() for t in cache.values()) + value.numel() <= CACHE_ELEMENTS:
            cache[key] = value
    return value


def linear_per_sample(module: nn.Module, calls: Sequence[Call],
                      cache: RuleCache | None = None) -> dict[str, Tensor]:
    """grad_n = sum over calls and positions t of g_nt x_nt^T: (N, out, in); bias (N, out)."""
    assert isinstance(module, nn.Linear)
    num = calls[0][0].shape[0]
    xs = torch.cat([x.reshape(num, -1, x.shape[-1]) for x, _ in calls], dim=1)  # (N, T, in)
    gs = torch.cat([g.reshape(num, -1, g.shape[-1]) for _, g in calls], dim=1)  # (N, T, out)
    out = {"weight": torch.bmm(gs.transpose(1, 2), xs)}
    if module.bias is not None:
        out["bias"] = gs.sum(1)
    return out


def conv_explicit_padding(module: nn.Conv1d | nn.Conv2d
                          ) -> tuple[list[int] | None, str, list[int]]:
    """How the conv pads: (F.pad widths or None, F.pad mode, zero padding left to the conv)."""
    kernel = tuple(module.kernel_size)
    zeros = [0] * len(kernel)
    if module.padding_mode != "zeros":
        return list(module._reversed_padding_repeated_twice), module.padding_mode, zeros
    if module.padding == "same":
        pads: list[int] = []
        for size, dil in zip(reversed(kernel), reversed(tuple(module.dilation)), strict=True):
            total = dil * (size - 1)
            pads += [total // 2, total - total // 2]
        return pads, "constant", zeros
    if module.padding == "valid":
        return None, "constant", zeros
    return None, "constant", list(module.padding)  # type: ignore[arg-type]


def conv_padded_calls(module: nn.Conv1d | nn.Conv2d, calls: Sequence[Call],
                      cache: RuleCache | None) -> tuple[list[Call], list[int]]:
    """Calls with x padded as the conv pads it (cached), and the zero padding left to the conv."""
    widths, mode, conv_padding = conv_explicit_padding(module)
    padded = []
    for index, (x, g) in enumerate(calls):
        if widths is not None:
            x = cached(cache, ("padded", index), partial(F.pad, x, widths, mode=mode))
        padded.append((x, g))
    return padded, conv_padding


def conv_weight_per_sample(module: nn.Conv1d | nn.Conv2d, x: Tensor, padding: list[int],
                           g: Tensor) -> Tensor:
    """Per-sample weight gradients (n, *weight.shape) from ONE grouped weight-gradient conv.

    The batch is folded into the channels and the groups: sample n's input and output channels
    form groups of their own, so the grouped conv's weight gradient is the stack of per-sample
    weight gradients. x: (n, C_in, *S) padded (``conv_padded_calls``), g: (n, C_out, *S_out).
    Measured per layer of ResNet-20 (128 CIFAR-10 images, 1 CPU thread, CPU time;
    ``bench/importance.py --conv-methods``), squares' sum included: 115 ms in all against 76 ms
    for the batch weight gradients alone, vmap of the per-sample call 127 ms, unfold + bmm
    584 ms (F.unfold copies kernel-size times the input).
    """
    num, weight = x.shape[0], module.weight
    # Only the shape of the weight argument matters to the weight-gradient kernel.
    shape_only = weight.new_empty((num * weight.shape[0], *weight.shape[1:]))
    per_sample = torch.ops.aten.convolution_backward(
        g.reshape(1, -1, *g.shape[2:]), x.reshape(1, -1, *x.shape[2:]), shape_only, None,
        list(module.stride), padding, list(module.dilation), False, [0] * (x.dim() - 2),
        num * module.groups, [False, True, False])[1]
    return per_sample.view(num, *weight.shape)


def conv_per_sample(module: nn.Module, calls: Sequence[Call],
                    cache: RuleCache | None = None) -> dict[str, Tensor]:
    assert isinstance(module, nn.Conv1d | nn.Conv2d)
    padded, padding = conv_padded_calls(module, calls, cache)
    weight = conv_weight_per_sample(module, padded[0][0], padding, padded[0][1])
    for x, g in padded[1:]:
        weight += conv_weight_per_sample(module, x, padding, g)
    out = {"weight": weight}
    if module.bias is not None:
        num = calls[0][0].shape[0]
        bias = calls[0][1].reshape(num, calls[0][1].shape[1], -1).sum(2)  # (N, C_out)
        for _, g in calls[1:]:
            bias += g.reshape(num, g.shape[1], -1).sum(2)
        out["bias"] = bias
    return out


def _affine_per_sample(calls: Sequence[Call], normalize: Callable[[Tensor], Tensor],
                       reduce_dims: Callable[[Tensor], tuple[int, ...]], has_bias: bool,
                       cache: RuleCache | None) -> dict[str, Tensor]:
    """y = x_hat * weight + bias: weight gradient sum(g * x_hat), bias gradient sum(g)."""
    weight_grad: Tensor | int = 0
    bias_grad: Tensor | int = 0
    for index, (x, g) in enumerate(calls):
        dims = reduce_dims(x)  # note: sum(dim=()) would reduce every dim, hence the guard
        weighted = g * cached(cache, ("x_hat", index), partial(normalize, x))
        weight_grad = weight_grad + (weighted.sum(dims) if dims else weighted)  # (N, *shape)
        if has_bias:
            bias_grad = bias_grad + (g.sum(dims) if dims else g)
    out: dict[str, Tensor] = {"weight": weight_grad}  # type: ignore[dict-item]
    if has_bias:
        out["bias"] = bias_grad  # type: ignore[assignment]
    return out


def batchnorm_per_sample(module: nn.Module, calls: Sequence[Call],
                         cache: RuleCache | None = None) -> dict[str, Tensor]:
    assert isinstance(module, nn.modules.batchnorm._BatchNorm)
    if module.training or module.running_mean is None or module.running_var is None:
        raise ConfigError(
            f"{type(module).__name__} uses batch statistics (training mode or "
            "track_running_stats=False), which couples the samples of a batch; per-sample "
            "importance needs running statistics in eval mode")
    if not module.affine:
        return {}

    def normalize(x: Tensor) -> Tensor:  # (N, C, *) -> same
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean, var = module.running_mean, module.running_var
        assert mean is not None and var is not None  # checked above
        mean, var = mean.view(shape), var.view(shape)
        return (x - mean) * torch.rsqrt(var + module.eps)

    return _affine_per_sample(calls, normalize, lambda x: tuple(range(2, x.dim())), True, cache)


def layernorm_per_sample(module: nn.Module, calls: Sequence[Call],
                         cache: RuleCache | None = None) -> dict[str, Tensor]:
    assert isinstance(module, nn.LayerNorm)
    if module.weight is None:
        return {}
    shape = tuple(module.normalized_shape)

    def normalize(x: Tensor) -> Tensor:
        return F.layer_norm(x, shape, None, None, module.eps)

    def dims(x: Tensor) -> tuple[int, ...]:  # leading dims except the sample dim
        return tuple(range(1, x.dim() - len(shape)))

    return _affine_per_sample(calls, normalize, dims, module.bias is not None, cache)


def groupnorm_per_sample(module: nn.Module, calls: Sequence[Call],
                         cache: RuleCache | None = None) -> dict[str, Tensor]:
    assert isinstance(module, nn.GroupNorm)
    if not module.affine:
        return {}

    def normalize(x: Tensor) -> Tensor:
        return F.group_norm(x, module.num_groups, None, None, module.eps)

    return _affine_per_sample(calls, normalize, lambda x: tuple(range(2, x.dim())), True, cache)


def embedding_per_sample(module: nn.Module, calls: Sequence[Call],
                         cache: RuleCache | None = None) -> dict[str, Tensor]:
    """Dense (N, vocab, dim): row v of sample n is the sum of g over n's positions holding v.

    Like autograd, the row ``padding_idx`` gets no gradient; ``scale_grad_by_freq`` (an
    optimizer heuristic) is ignored: this is the derivative of the output.
    """
    assert isinstance(module, nn.Embedding)
    vocab, dim = module.weight.shape
    num = calls[0][0].shape[0]
    indices = torch.cat([x.reshape(num, -1) for x, _ in calls], 1)  # (N, T)
    grads = torch.cat([g.reshape(num, -1, dim) for _, g in calls], 1)  # (N, T, D)
    sample = torch.arange(num, device=indices.device).view(-1, 1)
    keys = (sample * vocab + indices).reshape(-1)  # (N*T,) row of the (N*vocab, D) result
    out = grads.new_zeros(num * vocab, dim).index_add_(0, keys, grads.reshape(-1, dim))
    out = out.view(num, vocab, dim)
    if module.padding_idx is not None:
        out[:, module.padding_idx] = 0
    return {"weight": out}


# Exact types only (a subclass may change forward), as in rules.RULES.
PER_SAMPLE: dict[type[nn.Module], PerSample] = {
    nn.Linear: linear_per_sample,
    nn.Conv1d: conv_per_sample,
    nn.Conv2d: conv_per_sample,
    nn.BatchNorm1d: batchnorm_per_sample,
    nn.BatchNorm2d: batchnorm_per_sample,
    nn.BatchNorm3d: batchnorm_per_sample,
    nn.LayerNorm: layernorm_per_sample,
    nn.GroupNorm: groupnorm_per_sample,
    nn.Embedding: embedding_per_sample,
}
