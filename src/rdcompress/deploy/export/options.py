"""What every exporter takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from rdcompress.errors import ConfigError


@dataclass
class ExportOptions:
    model: nn.Module | None = None  # the architecture; default: the manifest's model spec
    trust_code: bool = False  # allow a manifest's ``pkg.mod:factory`` spec to run (as load)
    input_shape: tuple[int, ...] | None = None  # one example's shape, e.g. (1, 28, 28);
    #                                             default: the zoo model's dataset's
    compressed: bool = True  # False: the dense graph (for size comparisons)
    opset: int = 18  # ONNX opset (>= 18: BitwiseAnd unpacks 4-bit indices and masks)

    def __post_init__(self) -> None:
        if self.input_shape is not None:
            shape = tuple(int(d) for d in self.input_shape)
            if not shape or any(d < 1 for d in shape):
                raise ConfigError(f"input_shape={self.input_shape!r} must be a non-empty "
                                  "list of positive sizes (one example, without the batch)")
            self.input_shape = shape
        if self.opset < 18:
            raise ConfigError(f"opset={self.opset} is below 18, the first with BitwiseAnd "
                              "(used to unpack 4-bit indices and masks); use opset >= 18.")


@dataclass
class ExportResult:
    path: Path  # the written file
    format: str  # the target's name
    bytes: int  # its size
    details: dict = field(default_factory=dict)  # per-target facts (e.g. weights kept palettized)
