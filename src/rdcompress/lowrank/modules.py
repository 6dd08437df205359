"""Factorized layers that replace Linear / Conv2d modules: W ≈ A·B computed as two maps.

- ``LowRankLinear``: x -> B x (r features) -> A (·) + bias; A (out, r), B (r, in).
- ``LowRankConv2d``: a kh×kw conv from ``in`` to r channels (B as (r, in, kh, kw), with the
  original stride/padding/dilation) then a 1×1 conv to ``out`` channels (A as (out, r, 1, 1))
  with the bias. Grouped convolutions (groups > 1) are not factorized: their weight matrix
  mixes groups, so ``factorize_modules`` raises for them (a compressed file still stores them,
  and ``compress.load(factorized=True)`` keeps them dense).

Costs r·(in·kh·kw + out) multiply-adds per output position instead of out·in·kh·kw.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from rdcompress.errors import ConfigError


class LowRankLinear(nn.Module):
    def __init__(self, A: torch.Tensor, B: torch.Tensor, bias: torch.Tensor | None = None
                 ) -> None:
        super().__init__()
        self.A = nn.Parameter(A.detach().clone())  # (out, r)
        self.B = nn.Parameter(B.detach().clone())  # (r, in)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())  # (out,)

    @property
    def rank(self) -> int:
        return self.A.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        return F.linear(F.linear(x, self.B), self.A, self.bias)

    def dense_weight(self) -> torch.Tensor:
        return self.A @ self.B  # (out, in)


class LowRankConv2d(nn.Module):
    def __init__(self, A: torch.Tensor, B: torch.Tensor, conv: nn.Conv2d) -> None:
        super().__init__()
        out, in_channels = conv.out_channels, conv.in_channels
        kh, kw = conv.kernel_size
        rank = A.shape[1]
        self.A = nn.Parameter(A.detach().clone().reshape(out, rank, 1, 1))  # 1×1 conv
        self.B = nn.Parameter(B.detach().clone().reshape(rank, in_channels, kh, kw))  # kh×kw
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone())
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation

    @property
    def rank(self) -> int:
        return self.A.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, in, H, W) -> (N, out, H', W')
        hidden = F.conv2d(x, self.B, None, self.stride, self.padding,
                          self.dilation)  # (N, r, H', W')
        return F.conv2d(hidden, self.A, self.bias)

    def dense_weight(self) -> torch.Tensor:
        return (self.A.flatten(1) @ self.B.flatten(1)).reshape(
            self.A.shape[0], *self.B.shape[1:])  # (out, in, kh, kw)


# The builders take ``nn.Module`` to share one table signature; REPLACEMENTS dispatches on
# ``type(module)``, so each builder only ever receives its own layer type (hence the casts).
def _linear(module: nn.Module, A: torch.Tensor, B: torch.Tensor) -> nn.Module:
    linear = cast(nn.Linear, module)
    return LowRankLinear(A, B, linear.bias)


def _conv(module: nn.Module, A: torch.Tensor, B: torch.Tensor) -> nn.Module:
    conv = cast(nn.Conv2d, module)
    if conv.groups != 1 or conv.padding_mode != "zeros":
        raise ConfigError(f"conv with groups={conv.groups}, padding_mode="
                          f"{conv.padding_mode!r} cannot be factorized (groups=1 and zero "
                          "padding only); keep it dense.")
    return LowRankConv2d(A, B, conv)


# module type -> builder of its factorized replacement
REPLACEMENTS: dict[type, Callable[[nn.Module, torch.Tensor, torch.Tensor], nn.Module]] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv,
}


def can_factorize(module: nn.Module) -> bool:
    return type(module) in REPLACEMENTS and getattr(module, "groups", 1) == 1 \
        and getattr(module, "padding_mode", "zeros") == "zeros"


def factorize_modules(model: nn.Module, factors: Mapping[str, tuple[torch.Tensor, torch.Tensor]]
                      ) -> nn.Module:
    """A deep copy of ``model`` with the modules owning ``factors``' weights replaced.

    ``factors``: {weight name ("layers.1.weight"): (A (out, r), B (r, d))}; the factors are
    cast to the weight's dtype. ``model`` itself is untouched.
    """
    result = copy.deepcopy(model)
    modules = dict(result.named_modules())
    for name, (A, B) in factors.items():
        module_name = name.removesuffix(".weight")
        module = modules.get(module_name) if name.endswith(".weight") else None
        if module is None or type(module) not in REPLACEMENTS:
            raise ConfigError(f"{name!r} is not the weight of a Linear/Conv2d module; "
                              f"factorizable types: {[t.__name__ for t in REPLACEMENTS]}.")
        weight = module.weight
        out, d = weight.shape[0], weight[0].numel()
        if A.ndim != 2 or B.ndim != 2 or A.shape[0] != out or B.shape[1] != d \
                or A.shape[1] != B.shape[0]:
            raise ConfigError(f"factors {tuple(A.shape)} x {tuple(B.shape)} do not make the "
                              f"({out}, {d}) weight matrix of {name!r}.")
        replacement = REPLACEMENTS[type(module)](module, A.to(weight.dtype), B.to(weight.dtype))
        replacement.train(module.training)
        _set_module(result, module_name, replacement)
    return result


def _set_module(root: nn.Module, dotted: str, replacement: nn.Module) -> None:
    parent_name, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, replacement)
