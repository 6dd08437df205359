"""DataLoaders that apply a model's preprocessing per batch (fast: no per-item Python work),
and ``check_model_fits_data``: one tiny batch through the model before the long work."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rdcompress.errors import ConfigError, ModelError
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
    _check_count("limit", limit, allow_none=True)
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
    _check_count("batch_size", batch_size)
    inputs, targets = dataset_tensors(dataset, limit)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorBatches(inputs, targets), batch_size=batch_size, shuffle=shuffle,
        generator=generator, collate_fn=_PreprocessCollate(preprocessing),
    )


def tensor_loader(inputs: torch.Tensor, targets: torch.Tensor, batch_size: int = 256) -> DataLoader:
    """A DataLoader over ready model inputs (no preprocessing), in order."""
    _check_count("batch_size", batch_size)
    return DataLoader(TensorBatches(inputs, targets), batch_size=batch_size,
                      collate_fn=_identity_collate)


def _identity_collate(batch: Any) -> Any:
    return batch


def _check_count(name: str, value: int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer (a negative limit would "
                          "silently drop samples from the end; 0 would leave none)")


def check_model_fits_data(module: nn.Module, loader: Any, model: str, dataset: str,
                          samples: int = 2) -> None:
    """ModelError naming model, input shape and dataset if ``module`` cannot take the first
    ``samples`` inputs of ``loader`` (a dataset of another model: the raw error would be a
    matmul shape mismatch deep inside, after minutes of other work). Eval mode, no grad: the
    probe changes nothing (BatchNorm statistics included)."""
    try:
        inputs = next(iter(loader))[0][:samples]
    except StopIteration:
        raise ConfigError(f"dataset {dataset!r} gave no samples; check --split and --limit") \
            from None
    was_training = module.training
    parameter = next(module.parameters(), None)
    if parameter is not None:
        inputs = inputs.to(parameter.device)
    module.eval()
    try:
        with torch.no_grad():
            module(inputs)
    except (RuntimeError, ValueError, IndexError, TypeError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise ModelError(
            f"model {model} does not take the inputs of dataset {dataset!r}: a batch of shape "
            f"{tuple(inputs.shape)} (after the model's preprocessing) fails with: {first_line}. "
            "Pass the dataset the model was trained on (--data), or the model's architecture."
        ) from error
    finally:
        module.train(was_training)
