"""``ImageDataset``: a whole split held as uint8 pixels, served as float32 in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from rdcompress.errors import ConfigError


class ImageDataset(Dataset):
    """Images (N, C, H, W) uint8 and labels (N,) int64 of one split of one dataset.

    The float view is ``images / scale``: ``scale`` is 255 for 8-bit images and 16 for
    scikit-learn's digits (pixel values 0..16), so every value maps exactly to v / scale.
    ``source`` is where the files were found; ``checksums`` maps file -> verification status.
    """

    def __init__(
        self, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
        classes: Sequence[str], name: str, split: str, *, scale: float = 255.0,
        source: Path | None = None, checksums: dict[str, str] | None = None,
    ):
        images = torch.as_tensor(np.ascontiguousarray(images))
        labels = torch.as_tensor(np.asarray(labels)).to(torch.int64)
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ConfigError(
                f"images must be a (N, C, H, W) uint8 array; got {tuple(images.shape)} "
                f"{images.dtype}"
            )
        if labels.shape != (images.shape[0],):
            raise ConfigError(
                f"labels must have shape ({images.shape[0]},) to match the images; "
                f"got {tuple(labels.shape)}"
            )
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
            raise ConfigError(
                f"labels must lie in [0, {len(classes)}) for {len(classes)} classes; got range "
                f"[{int(labels.min())}, {int(labels.max())}]"
            )
        self.images = images  # (N, C, H, W) uint8
        self.labels = labels  # (N,) int64
        self.classes = list(classes)
        self.name = name
        self.split = split
        self.scale = float(scale)
        self.source = source
        self.checksums = dict(checksums or {})

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].to(torch.float32) / self.scale  # (C, H, W)
        return image, int(self.labels[index])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split: (N, C, H, W) float32 in [0, 1] and (N,) int64."""
        return self.images.to(torch.float32) / self.scale, self.labels.clone()

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()

    def subset(self, indices: np.ndarray, split: str) -> ImageDataset:
        """A new dataset holding the given rows (a split carved out of this one)."""
        index = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return ImageDataset(
            self.images[index], self.labels[index], self.classes, self.name, split,
            scale=self.scale, source=self.source, checksums=self.checksums,
        )

    def __repr__(self) -> str:
        return (
            f"ImageDataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"input_shape={self.input_shape}, num_classes={self.num_classes})"
        )
