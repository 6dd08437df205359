"""CIFAR-10/100 pickle batches: folders, archives, the safe unpickler, damaged files."""

from __future__ import annotations

import pickle
import tarfile

import numpy as np
import pytest
import torch

from rdcompress.data import load_dataset
from rdcompress.data.cifar import parse_batch, safe_unpickle
from rdcompress.errors import ChecksumError, CorruptFileError


def _expected_pixels(data_rows: np.ndarray) -> np.ndarray:
    """(n, 3, 32, 32) from (n, 3072) rows, element by element: R plane, G plane, B plane."""
    out = np.zeros((len(data_rows), 3, 32, 32), np.uint8)
    for i, row in enumerate(data_rows):
        for c in range(3):
            for h in range(32):
                out[i, c, h, :] = row[c * 1024 + h * 32: c * 1024 + h * 32 + 32]
    return out


def test_cifar10_folder_exact(writers, tmp_path):
    batches = writers.cifar10(tmp_path / "cifar-10-batches-py")
    test = load_dataset("cifar10", "test", data_dir=tmp_path)
    assert test.source == tmp_path / "cifar-10-batches-py"
    expected = _expected_pixels(batches["test_batch"]["data"])
    assert torch.equal(test.images, torch.from_numpy(expected))
    assert test.labels.tolist() == batches["test_batch"]["labels"]
    assert test.classes[0] == "airplane" and test.num_classes == 10
    trainval = load_dataset("cifar10", "trainval", data_dir=tmp_path)
    rows = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert torch.equal(trainval.images, torch.from_numpy(_expected_pixels(rows)))
    labels = sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert trainval.labels.tolist() == labels
    x, _ = trainval.tensors()
    assert torch.equal(x, torch.from_numpy(_expected_pixels(rows)).float() / 255)


def test_cifar10_archive_equals_folder(writers, tmp_path, helpers):
    writers.cifar10(tmp_path / "src" / "cifar-10-batches-py")
    (tmp_path / "data").mkdir()
    helpers.tar_gz(tmp_path / "src" / "cifar-10-batches-py",
                   tmp_path / "data" / "cifar-10-python.tar.gz", arcname="cifar-10-batches-py")
    from_folder = load_dataset("cifar10", "train", data_dir=tmp_path / "src")
    from_archive = load_dataset("cifar10", "train", data_dir=tmp_path / "data")
    assert from_archive.source == tmp_path / "data" / "cifar-10-python.tar.gz"
    assert torch.equal(from_folder.images, from_archive.images)
    assert torch.equal(from_folder.labels, from_archive.labels)
    assert len(from_folder) == 27  # 30 minus the 10% carve-out of 3


def test_cifar100_fine_labels_and_meta(writers, tmp_path):
    batches = writers.cifar100(tmp_path / "cifar100" / "cifar-100-python")
    test = load_dataset("cifar100", "test", data_dir=tmp_path)
    assert test.labels.tolist() == batches["test"][b"fine_labels"]
    assert test.classes[:2] == ["class00", "class01"] and test.num_classes == 100
    assert torch.equal(test.images, torch.from_numpy(_expected_pixels(batches["test"][b"data"])))
    assert set(test.checksums.values()) == {"not checked (not the canonical size)"}


class _Exploit:
    """A pickle payload that would call a function on load."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_safe_unpickler_refuses_foreign_globals(tmp_path):
    target = tmp_path / "pwned"
    payload = pickle.dumps({b"data": _Exploit(target)}, protocol=2)
    with pytest.raises(CorruptFileError, match="refusing to load global"):
        safe_unpickle(payload, "evil")
    assert not target.exists()
    # numpy arrays themselves are allowed, in protocols 2 and 5
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for protocol in (2, 5):
        assert np.array_equal(safe_unpickle(pickle.dumps(array, protocol=protocol), "x"), array)


@pytest.mark.parametrize("damage", ["truncate", "keys", "shape", "labels"])
def test_damaged_batches_raise(writers, tmp_path, damage):
    batches = writers.cifar10(tmp_path / "cifar-10-batches-py")
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    batch = dict(batches["test_batch"])
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:-100])
    else:
        if damage == "keys":
            batch.pop("labels")
        elif damage == "shape":
            batch["data"] = batch["data"][:, :100]
        else:
            batch["labels"] = batch["labels"][:-1]
        path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(CorruptFileError, match="test_batch"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


def test_truncated_archive_raises(writers, tmp_path, helpers):
    writers.cifar10(tmp_path / "src" / "cifar-10-batches-py")
    archive = helpers.tar_gz(tmp_path / "src" / "cifar-10-batches-py",
                             tmp_path / "cifar-10-python.tar.gz", arcname="cifar-10-batches-py")
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(CorruptFileError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", "train", data_dir=tmp_path)


def test_archive_missing_member_raises(writers, tmp_path):
    writers.cifar10(tmp_path / "src")
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src" / "data_batch_1", arcname="cifar-10-batches-py/data_batch_1")
    with pytest.raises(CorruptFileError, match="lacks"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


def test_canonical_row_count_with_wrong_md5_raises(writers, tmp_path):
    writers.cifar10(tmp_path / "cifar-10-batches-py")
    big = writers.cifar_batch(10000, b"labels", 10)  # the canonical 10,000 rows
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(big, protocol=2))
    with pytest.raises(ChecksumError, match="40351d587109b95175f43aff81a1287e"):
        load_dataset("cifar10", "test", data_dir=tmp_path)


def test_parse_batch_hand_case():
    data = np.zeros((1, 3072), np.uint8)
    data[0, 0], data[0, 1024 + 33], data[0, 3071] = 7, 9, 11  # R(0,0), G(1,1), B(31,31)
    content = pickle.dumps({b"data": data, b"labels": [4]}, protocol=2)
    images, labels = parse_batch(content, "x", "labels")
    assert images[0, 0, 0, 0] == 7 and images[0, 1, 1, 1] == 9 and images[0, 2, 31, 31] == 11
    assert images.sum() == 27 and labels.tolist() == [4]
