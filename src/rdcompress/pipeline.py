"""DataLoaders that apply a model's preprocessing per batch (fast: no per-item Python work)."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from rdcompress.models.preprocessing import Preprocessing


class TensorBatches(Dataset):
    """(inputs, targets) tensors with batched indexing (``__getitems__``) for DataLoader."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[index], self.targets[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.inputs[index], self.targets[index]


class _PreprocessCollate:
    def __init__(self, preprocessing: Preprocessing) -> None:
        self.preprocessing = preprocessing

    def __call__(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = batch
        return self.preprocessing(inputs), targets


def dataset_tensors(dataset: Any, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All (images float32 [0,1] (N,C,H,W), labels (N,)) of a dataset, the first ``limit`` only."""
    if hasattr(dataset, "tensors"):
        inputs, targets = dataset.tensors()
    else:
        count = len(dataset) if limit is None else min(limit, len(dataset))
        items = [dataset[i] for i in range(count)]
        inputs = torch.stack([torch.as_tensor(x) for x, _ in items])
        targets = torch.as_tensor([int(y) for _, y in items])
    if limit is not None:
        inputs, targets = inputs[:limit], targets[:limit]
    return inputs, targets


def make_loader(dataset: Any, preprocessing: Preprocessing, batch_size: int = 256,
                shuffle: bool = False, seed: int = 0, limit: int | None = None) -> DataLoader:
    """A DataLoader of preprocessed (inputs, labels) batches; shuffling is seeded."""
    inputs, targets = dataset_tensors(dataset, limit)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorBatches(inputs, targets), batch_size=batch_size, shuffle=shuffle,
        generator=generator, collate_fn=_PreprocessCollate(preprocessing),
    )


def tensor_loader(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 256) -> DataLoader:
    """A DataLoader over ready model inputs (no preprocessing), in order."""
    return DataLoader(TensorBatches(inputs, targets), batch_size=batch_size,
                      collate_fn=_identity_collate)


def _identity_collate(batch: Any) -> Any:
    return batch
