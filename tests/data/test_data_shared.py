"""The real files in ../shared/data (skipped when that folder is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rdcompress.data import load_dataset, locate

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared" / "data"


@pytest.mark.shared_data
def test_shared_mnist_and_cifar10_jpeg():
    if not (SHARED / "mnist").is_dir() or not (SHARED / "cifar10-jpeg.tar.gz").is_file():
        pytest.skip(f"real data not present at {SHARED} (expected ../shared/data beside the repo)")
    assert locate("mnist", SHARED) == SHARED / "mnist"
    assert locate("cifar10-jpeg", SHARED) == SHARED / "cifar10-jpeg.tar.gz"
    mnist = load_dataset("mnist", "test", data_dir=SHARED, download=False)
    assert len(mnist) == 10000 and mnist.input_shape == (1, 28, 28)
    assert set(mnist.checksums.values()) == {"verified"}  # canonical decompressed md5s
    assert sum(mnist.class_counts()) == 10000 and mnist.class_counts()[0] == 980
    jpeg = load_dataset("cifar10-jpeg", "test", data_dir=SHARED, download=False)
    assert len(jpeg) == 10000 and jpeg.input_shape == (3, 32, 32)
    assert jpeg.class_counts() == [1000] * 10
    assert jpeg.classes[0] == "airplane" and jpeg.classes[-1] == "truck"
