"""ImageDataset behaviour and the exactness of digits (pixels 0..16 -> v / 16)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sklearn_digits

from rdcompress.data import ImageDataset, load_dataset
from rdcompress.errors import ConfigError


def test_digits_exact_against_sklearn():
    reference = sklearn_digits()
    by_pixels = {tuple(img.flatten()): int(t) for img, t in
                 zip(reference.images, reference.target, strict=True)}
    for split in ("train", "test"):
        dataset = load_dataset("digits", split)
        x, y = dataset.tensors()
        assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32
        assert dataset.input_shape == (1, 8, 8) and dataset.num_classes == 10
        sixteenths = (x * 16).numpy()
        assert np.array_equal(sixteenths, np.round(sixteenths))  # v / 16 exactly
        for image, label in zip(sixteenths, y.tolist(), strict=True):
            assert by_pixels[tuple(image.flatten().astype(np.float64))] == label
    first, label = dataset[0]
    assert torch.equal(first, x[0]) and label == int(y[0])
    assert float(x.max()) == 1.0 and float(x.min()) == 0.0


def test_image_dataset_validates_and_subsets():
    images = torch.arange(2 * 1 * 2 * 2, dtype=torch.uint8).reshape(2, 1, 2, 2)
    dataset = ImageDataset(images, [1, 0], ["a", "b"], "toy", "train")
    assert dataset.class_counts() == [1, 1] and len(dataset) == 2
    assert torch.equal(dataset[1][0], images[1].float() / 255)
    picked = dataset.subset(np.array([1]), "val")
    assert picked.split == "val" and picked.labels.tolist() == [0]
    with pytest.raises(ConfigError, match="uint8"):
        ImageDataset(images.float(), [1, 0], ["a", "b"], "toy", "train")
    with pytest.raises(ConfigError, match=r"shape \(2,\)"):
        ImageDataset(images, [1], ["a", "b"], "toy", "train")
    with pytest.raises(ConfigError, match=r"\[0, 2\)"):
        ImageDataset(images, [1, 2], ["a", "b"], "toy", "train")
