"""IDX parsing and the MNIST / Fashion-MNIST loaders, on small files the tests write."""

from __future__ import annotations

import gzip
import hashlib
import json
import os

import numpy as np
import pytest
import torch

from rdcompress.data import DATASETS, encode_idx, load_dataset, parse_idx
from rdcompress.data import verify as verify_module
from rdcompress.errors import ChecksumError, CorruptFileError


def test_parse_idx_hand_computed():
    content = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 255])
    np.testing.assert_array_equal(parse_idx(content, "x"), [[1, 2, 3], [4, 5, 255]])
    # int16 big-endian: 0x0102 = 258, 0xFFFE = -2
    content = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    array = parse_idx(content, "x")
    assert array.dtype == np.int16 and array.tolist() == [258, -2]


def test_encode_idx_matches_hand_bytes(helpers):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert encode_idx(array) == helpers.idx(array)
    floats = np.array([1.5, -2.0], dtype=np.float32)
    assert encode_idx(floats) == bytes([0, 0, 0x0D, 1, 0, 0, 0, 2]) + floats.astype(">f4").tobytes()
    np.testing.assert_array_equal(parse_idx(encode_idx(floats), "x"), floats)


@pytest.mark.parametrize("content, words", [
    (b"\x00\x00", "too short"),
    (bytes([1, 0, 8, 1, 0, 0, 0, 1, 7]), "not an IDX file"),
    (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 7]), "not an IDX file"),
    (bytes([0, 0, 8, 3, 0, 0, 0, 1]), "3 dimensions"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8]), "truncated"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 1, 7, 8]), "trailing bytes"),
])
def test_parse_idx_rejects_bad_bytes(content, words):
    with pytest.raises(CorruptFileError, match=words) as info:
        parse_idx(content, "some-file.idx")
    assert "some-file.idx" in str(info.value)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_loads_exact_values(writers, tmp_path, gz):
    arrays = writers.mnist(tmp_path / "data" / "mnist", gz=gz)
    test = load_dataset("mnist", "test", data_dir=tmp_path / "data", download=False)
    images, labels = test.tensors()
    expected = torch.from_numpy(arrays["t10k-images-idx3-ubyte"]).float()[:, None] / 255
    assert images.shape == (20, 1, 28, 28) and images.dtype == torch.float32
    assert torch.equal(images, expected)
    assert labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert test.classes == [str(d) for d in range(10)] and test.input_shape == (1, 28, 28)
    image0, label0 = test[3]
    assert torch.equal(image0, expected[3]) and label0 == int(arrays["t10k-labels-idx1-ubyte"][3])
    suffix = ".gz" if gz else ""
    assert test.checksums == {f"t10k-images-idx3-ubyte{suffix}": verify_module.NOT_CANONICAL,
                              f"t10k-labels-idx1-ubyte{suffix}": verify_module.NOT_CANONICAL}


def test_mnist_train_val_partition_the_train_file(writers, tmp_path):
    arrays = writers.mnist(tmp_path / "mnist", n_train=120)
    train = load_dataset("mnist", "train", data_dir=tmp_path)
    val = load_dataset("mnist", "val", data_dir=tmp_path)
    trainval = load_dataset("mnist", "trainval", data_dir=tmp_path)
    # Fewer images than the canonical 5,000 val count: 10% carve-out, one per class here.
    assert (len(train), len(val), len(trainval)) == (108, 12, 120)
    # 12 per class, 1.2 each: largest remainder, ties to the lower class ids.
    assert torch.bincount(val.labels, minlength=10).tolist() == [2, 2] + [1] * 8
    rows = {tuple(img.flatten().tolist()) for img in trainval.images}
    assert len(rows) == 120
    both = torch.cat([train.images, val.images])
    assert {tuple(img.flatten().tolist()) for img in both} == rows
    assert torch.equal(trainval.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))


def test_fashion_mnist_found_in_system_dir(writers, isolated):
    writers.mnist(isolated / "system-datasets" / "fashion-mnist", n_train=12, n_test=10)
    test = load_dataset("fashion-mnist", "test", download=False)
    assert len(test) == 10 and test.classes[0] == "T-shirt/top" and test.classes[9] == "Ankle boot"
    assert test.source == isolated / "system-datasets" / "fashion-mnist"


def test_truncated_and_corrupted_gz_raise(writers, tmp_path):
    directory = tmp_path / "mnist"
    writers.mnist(directory)
    path = directory / "t10k-images-idx3-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match="t10k-images-idx3-ubyte.gz") as info:
        load_dataset("mnist", "test", data_dir=tmp_path)
    assert "download it again" in str(info.value)
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF  # the CRC (or the deflate stream) catches this
    path.write_bytes(bytes(flipped))
    with pytest.raises(CorruptFileError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_truncated_raw_idx_raises(writers, tmp_path):
    directory = tmp_path / "mnist"
    writers.mnist(directory, gz=False)
    path = directory / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CorruptFileError, match="truncated"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def test_label_count_mismatch_raises(writers, tmp_path, helpers):
    directory = tmp_path / "mnist"
    writers.mnist(directory, gz=False)
    (directory / "t10k-labels-idx1-ubyte").write_bytes(helpers.idx(np.zeros(5, np.uint8)))
    with pytest.raises(CorruptFileError, match=r"\(20,\) uint8 labels"):
        load_dataset("mnist", "test", data_dir=tmp_path)
    (directory / "t10k-labels-idx1-ubyte").write_bytes(helpers.idx(np.full(20, 10, np.uint8)))
    with pytest.raises(CorruptFileError, match=r"expected \[0, 10\)"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def _canonical_size_labels(directory, helpers, labels):
    """t10k files whose label file has the canonical size (10,008 bytes): md5 is enforced."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "t10k-images-idx3-ubyte").write_bytes(
        helpers.idx(np.zeros((10000, 2, 2), np.uint8)))
    (directory / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(helpers.idx(labels)))
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (directory / name).write_bytes(helpers.idx(np.zeros((1,) * (3 if "images" in name else 1),
                                                            np.uint8)))
    return hashlib.md5(helpers.idx(labels)).hexdigest()


def test_canonical_size_with_wrong_md5_raises_checksum_error(tmp_path, helpers):
    _canonical_size_labels(tmp_path / "mnist", helpers, np.arange(10000) % 10)
    with pytest.raises(ChecksumError, match="27ae3e4e09519cfbb04c329615203637") as info:
        load_dataset("mnist", "test", data_dir=tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)


def test_verification_is_cached_by_path_size_mtime(tmp_path, helpers, monkeypatch, isolated):
    labels = np.arange(10000) % 10
    md5 = _canonical_size_labels(tmp_path / "mnist", helpers, labels)
    monkeypatch.setitem(DATASETS["mnist"].md5, "t10k-labels-idx1-ubyte", md5)
    first = load_dataset("mnist", "test", data_dir=tmp_path)
    assert first.checksums["t10k-labels-idx1-ubyte.gz"] == verify_module.VERIFIED
    assert len(json.loads((isolated / "cache" / "verified.json").read_text())) == 1

    def exploding_md5(*args):
        raise AssertionError("md5 recomputed although the file was verified before")

    verify_module.clear_memory()  # a new process: only the on-disk record remains
    monkeypatch.setattr(verify_module.hashlib, "md5", exploding_md5)
    again = load_dataset("mnist", "test", data_dir=tmp_path)
    assert again.checksums["t10k-labels-idx1-ubyte.gz"] == verify_module.VERIFIED
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="recomputed"):  # a touched file is hashed again
        load_dataset("mnist", "test", data_dir=tmp_path)
