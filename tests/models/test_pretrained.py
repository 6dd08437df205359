"""The shared pretrained checkpoints load into the zoo and reach their stated accuracies."""

import pytest
import torch

from rdcompress._io import sha256_file
from rdcompress.evaluate import classification_metrics, collect_outputs
from rdcompress.models import load_model
from rdcompress.pipeline import make_loader

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def _accuracy(loaded, dataset):
    loader = make_loader(dataset, loaded.preprocessing, batch_size=500)
    logits, labels = collect_outputs(loaded.module, loader)
    return classification_metrics(logits, labels).accuracy


def test_resnet20_reaches_81_percent_on_cifar10_jpeg(shared_data):
    from rdcompress.data import load_dataset

    checkpoint = shared_data("checkpoints", "resnet20-12fca82f.th")
    shared_data("cifar10-jpeg.tar.gz")
    assert sha256_file(checkpoint).startswith("12fca82f")
    loaded = load_model(checkpoint, arch="resnet20")
    test = load_dataset("cifar10-jpeg", split="test", data_dir=checkpoint.parents[1])
    assert len(test) == 10_000
    torch.set_num_threads(2)
    accuracy = _accuracy(loaded, test)
    assert accuracy == pytest.approx(0.810, abs=0.005), accuracy  # stated: 81.0%


def test_lenet5_reaches_99_1_percent_on_mnist(shared_data):
    from rdcompress.data import load_dataset

    checkpoint = shared_data("checkpoints", "lenet5-mnist.pth")
    shared_data("mnist", "t10k-images-idx3-ubyte.gz")
    loaded = load_model("lenet5", weights=checkpoint)
    test = load_dataset("mnist", split="test", data_dir=checkpoint.parents[1])
    accuracy = _accuracy(loaded, test)
    assert accuracy == pytest.approx(0.991, abs=0.002), accuracy  # stated: 99.1%
