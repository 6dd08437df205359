"""Input preprocessing that a zoo entry knows: resizing and per-channel normalization.

Datasets yield float32 images in [0, 1] of shape (N, C, H, W); a ``Preprocessing`` maps such a
batch to what the model expects. It is plain data (``to_dict``/``from_dict``) so that sidecar files
and ``.rdz`` manifests record it exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from rdcompress.errors import ConfigError


@dataclass(frozen=True)
class Preprocessing:
    mean: tuple[float, ...] | None = None  # per channel, subtracted after resizing
    std: tuple[float, ...] | None = None  # per channel, divides after subtracting the mean
    resize: tuple[int, int] | None = None  # (H, W) target of a bilinear resize, or None
    flatten: bool = False  # (N, C, H, W) -> (N, C*H*W) at the end (for plain Linear models)

    def __post_init__(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise ConfigError("Preprocessing needs both mean and std, or neither")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ConfigError(f"Preprocessing std={self.std} must be positive")
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise ConfigError(f"mean has {len(self.mean)} channels but std has {len(self.std)}")

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) float in [0, 1] -> model input."""
        x = images.float()
        if self.resize is not None and tuple(x.shape[-2:]) != tuple(self.resize):
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False)
        if self.mean is not None and self.std is not None:
            if x.shape[1] != len(self.mean):
                raise ConfigError(
                    f"images have {x.shape[1]} channels but the normalization has "
                    f"{len(self.mean)}; is this the model's dataset?"
                )
            mean = torch.tensor(self.mean, dtype=x.dtype).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=x.dtype).view(1, -1, 1, 1)
            x = (x - mean) / std
        if self.flatten:
            x = x.flatten(1)
        return x

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Preprocessing:
        if not data:
            return cls()
        fields = {}
        for key in ("mean", "std", "resize"):
            value = data.get(key)
            fields[key] = tuple(value) if value is not None else None
        return cls(**fields, flatten=bool(data.get("flatten", False)))


IDENTITY = Preprocessing()
MNIST_NORMALIZE = Preprocessing(mean=(0.1307,), std=(0.3081,))
IMAGENET_NORMALIZE = Preprocessing(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
CIFAR_HALF = Preprocessing(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
LENET5_RESIZE = Preprocessing(resize=(32, 32))
