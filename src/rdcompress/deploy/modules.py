"""Layers that hold compressed weights (``sources``) and decode them in ``forward``.

- ``CompressedLinear`` / ``CompressedConv2d``: the dense layer's computation with its weight
  (and bias) read from weight holders: a ``Palette`` (codebook + uint4/uint8 indices), kept
  values + positions (pruned), a ``Composed`` sum, or a plain tensor.
- ``FactorizedLinear`` / ``FactorizedConv2d``: a low-rank weight W = A·B computed as two maps
  (x -> B x -> A (·) + bias; for a conv: a kh×kw conv to r channels, then a 1×1 conv), the
  factors themselves held by weight holders (a quantized factor stays a palette).

``LAYERS`` is the table of dense layer types that have a compressed counterpart; the builders
take the dense module (for its hyper-parameters) and the holders of its parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from rdcompress.deploy.sources import WeightSource


def _bias(source: WeightSource | None) -> torch.Tensor | None:
    return None if source is None else source()


class CompressedLinear(nn.Module):
    def __init__(self, weight: WeightSource, bias: WeightSource | None) -> None:
        super().__init__()
        self.weight_source = weight  # decodes to (out, in)
        self.bias_source = bias  # (out,) or None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        return F.linear(x, self.weight_source(), _bias(self.bias_source))

    def extra_repr(self) -> str:
        out, in_features = self.weight_source.shape
        return f"in_features={in_features}, out_features={out}"


class _ConvArgs:
    """The hyper-parameters of an ``nn.Conv2d``, and its forward with a given weight."""

    def _copy_conv_args(self, conv: nn.Conv2d) -> None:
        self.stride, self.padding, self.dilation = conv.stride, conv.padding, conv.dilation
        self.groups, self.padding_mode = conv.groups, conv.padding_mode
        self.padding_twice = conv._reversed_padding_repeated_twice

    def _conv(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
              full: bool = True) -> torch.Tensor:
        """nn.Conv2d's forward; ``full=False``: a 1×1 conv (stride 1, no padding, groups 1)."""
        if not full:
            return F.conv2d(x, weight, bias)
        if self.padding_mode != "zeros":
            x = F.pad(x, self.padding_twice, mode=self.padding_mode)
            return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class CompressedConv2d(nn.Module, _ConvArgs):
    def __init__(self, conv: nn.Conv2d, weight: WeightSource, bias: WeightSource | None
                 ) -> None:
        super().__init__()
        self._copy_conv_args(conv)
        self.weight_source = weight  # decodes to (out, in / groups, kh, kw)
        self.bias_source = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, in, H, W) -> (N, out, H', W')
        return self._conv(x, self.weight_source(), _bias(self.bias_source))

    def extra_repr(self) -> str:
        return f"shape={self.weight_source.shape}, stride={self.stride}, groups={self.groups}"


class FactorizedLinear(nn.Module):
    """W ≈ A·B: A (out, r), B (r, in), both cast to ``dtype`` (the weight's) when decoded."""

    def __init__(self, A: WeightSource, B: WeightSource, bias: WeightSource | None,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.A, self.B, self.bias_source, self.dtype = A, B, bias, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        hidden = F.linear(x, self.B().to(self.dtype))  # (..., r)
        return F.linear(hidden, self.A().to(self.dtype), _bias(self.bias_source))


class FactorizedConv2d(nn.Module, _ConvArgs):
    """A (out, r) as a 1×1 conv after B (r, in·kh·kw) as the original kh×kw conv to r maps."""

    def __init__(self, conv: nn.Conv2d, A: WeightSource, B: WeightSource,
                 bias: WeightSource | None, dtype: torch.dtype) -> None:
        super().__init__()
        self._copy_conv_args(conv)
        self.kernel = (conv.in_channels, *conv.kernel_size)
        self.A, self.B, self.bias_source, self.dtype = A, B, bias, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, in, H, W) -> (N, out, H', W')
        B, A = self.B().to(self.dtype), self.A().to(self.dtype)  # (r, in·kh·kw), (out, r)
        hidden = self._conv(x, B.reshape(B.shape[0], *self.kernel), None)  # (N, r, H', W')
        return self._conv(hidden, A.reshape(*A.shape, 1, 1), _bias(self.bias_source),
                          full=False)


# Builders: (dense module, {"weight": holder, "bias": holder or absent}) -> replacement.
def _linear(module: nn.Module, sources: dict[str, WeightSource]) -> nn.Module:
    return CompressedLinear(sources["weight"], sources.get("bias"))


def _conv2d(module: nn.Module, sources: dict[str, WeightSource]) -> nn.Module:
    return CompressedConv2d(cast(nn.Conv2d, module), sources["weight"], sources.get("bias"))


def _factorized_linear(module: nn.Module, A: WeightSource, B: WeightSource,
                       bias: WeightSource | None, dtype: torch.dtype) -> nn.Module:
    return FactorizedLinear(A, B, bias, dtype)


def _factorized_conv2d(module: nn.Module, A: WeightSource, B: WeightSource,
                       bias: WeightSource | None, dtype: torch.dtype) -> nn.Module:
    return FactorizedConv2d(cast(nn.Conv2d, module), A, B, bias, dtype)


# dense type -> builder of its compressed replacement. Other types keep their dense layer.
LAYERS: dict[type, Callable[[nn.Module, dict[str, WeightSource]], nn.Module]] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
}
# dense type -> builder of its factorized replacement (grouped convs are composed densely:
# their weight matrix mixes groups).
FACTORIZED: dict[type, Callable[..., nn.Module]] = {
    nn.Linear: _factorized_linear,
    nn.Conv2d: _factorized_conv2d,
}


def can_factorize(module: nn.Module) -> bool:
    return type(module) in FACTORIZED and getattr(module, "groups", 1) == 1
