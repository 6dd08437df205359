"""Image folders: PNG directories, JPEG .tar.gz archives, caching, damaged inputs."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from rdcompress.data import imagefolder, load_dataset
from rdcompress.errors import CorruptFileError, DatasetNotFoundError


def _reference(written, split, classes):
    """(images, labels) in (class, file) order, decoded independently with PIL."""
    keys = sorted((classes.index(c), f, c) for s, c, f in written if s == split)
    images = np.stack([_pil_decode(written[(split, c, f)]) for _, f, c in keys])
    return images, [label for label, _, _ in keys]


def _pil_decode(data):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)


def test_png_directory_exact(writers, tmp_path):
    written = writers.image_folder(tmp_path / "shapes")
    test = load_dataset(str(tmp_path / "shapes"), "test")
    assert test.classes == ["ant", "cat", "dog"]  # sorted union over train/ and test/
    images, labels = _reference(written, "test", test.classes)
    assert test.images.shape == (4, 3, 4, 5)
    assert torch.equal(test.images, torch.from_numpy(images))
    assert test.labels.tolist() == labels == [0, 0, 1, 1]
    trainval = load_dataset(f"imagefolder:{tmp_path / 'shapes'}", "trainval")
    images, labels = _reference(written, "train", trainval.classes)
    assert torch.equal(trainval.images, torch.from_numpy(images))
    assert trainval.labels.tolist() == labels


def test_jpeg_tar_gz_matches_pil_and_directory(writers, tmp_path, helpers):
    written = writers.image_folder(tmp_path / "folder", fmt="JPEG", size=(8, 8))
    archive = helpers.tar_gz(tmp_path / "folder", tmp_path / "folder.tar.gz")
    from_archive = load_dataset(str(archive), "trainval")
    images, labels = _reference(written, "train", from_archive.classes)
    assert torch.equal(from_archive.images, torch.from_numpy(images))
    assert from_archive.labels.tolist() == labels
    from_dir = load_dataset(str(tmp_path / "folder"), "trainval")
    assert torch.equal(from_dir.images, from_archive.images)
    # An archive whose members sit under one wrapper folder reads the same.
    wrapped = helpers.tar_gz(tmp_path / "folder", tmp_path / "wrapped.tar.gz", arcname="top")
    assert torch.equal(load_dataset(str(wrapped), "trainval").images, from_archive.images)


def test_val_carved_from_train_is_stratified_and_disjoint(writers, tmp_path):
    counts = {"train": {"a": 20, "b": 10}, "test": {"a": 1, "b": 1}}
    writers.image_folder(tmp_path / "f", counts=counts)
    train = load_dataset(str(tmp_path / "f"), "train")
    val = load_dataset(str(tmp_path / "f"), "val")
    assert (len(train), len(val)) == (27, 3)
    assert torch.bincount(val.labels).tolist() == [2, 1]
    rows = lambda d: {tuple(x.flatten().tolist()) for x in d.images}  # noqa: E731
    assert not rows(train) & rows(val)
    assert len(rows(train) | rows(val)) == 30


def test_own_val_folder_is_used(writers, tmp_path):
    counts = {"train": {"a": 3, "b": 3}, "val": {"a": 1, "b": 2}, "test": {"a": 1}}
    writers.image_folder(tmp_path / "f", counts=counts)
    assert len(load_dataset(str(tmp_path / "f"), "train")) == 6
    assert load_dataset(str(tmp_path / "f"), "val").labels.tolist() == [0, 1, 1]
    assert len(load_dataset(str(tmp_path / "f"), "trainval")) == 9


def test_cifar10_jpeg_found_by_name(writers, tmp_path, helpers):
    writers.image_folder(tmp_path / "x", fmt="JPEG", counts={"test": {"cat": 2, "dog": 1}})
    (tmp_path / "data").mkdir()
    helpers.tar_gz(tmp_path / "x", tmp_path / "data" / "cifar10-jpeg.tar.gz")
    test = load_dataset("cifar10-jpeg", "test", data_dir=tmp_path / "data")
    assert len(test) == 3 and test.name == "cifar10-jpeg"
    with pytest.raises(DatasetNotFoundError, match="no train/ folder"):
        load_dataset("cifar10-jpeg", "train", data_dir=tmp_path / "data")


def test_decoded_arrays_are_cached(writers, tmp_path, helpers, monkeypatch, isolated):
    writers.image_folder(tmp_path / "f", fmt="JPEG")
    archive = helpers.tar_gz(tmp_path / "f", tmp_path / "f.tar.gz")
    first = load_dataset(str(archive), "test")
    assert list((isolated / "cache").glob("imagefolder-*-test.images.npy"))

    def no_decoding(*args):
        raise AssertionError("decoded again although cached")

    monkeypatch.setattr(imagefolder, "decode_image", no_decoding)
    second = load_dataset(str(archive), "test")
    assert torch.equal(first.images, second.images) and second.classes == first.classes
    stat = archive.stat()
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a changed archive
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(str(archive), "test")


def test_damaged_cache_is_rebuilt(writers, tmp_path, isolated):
    writers.image_folder(tmp_path / "f")
    first = load_dataset(str(tmp_path / "f"), "test")
    (cached,) = (isolated / "cache").glob("imagefolder-*-test.images.npy")
    cached.write_bytes(cached.read_bytes()[:-7])
    assert torch.equal(load_dataset(str(tmp_path / "f"), "test").images, first.images)


def test_mixed_sizes_raise(writers, tmp_path):
    writers.image_folder(tmp_path / "f", counts={"test": {"a": 2}})
    writers.image_folder(tmp_path / "g", size=(6, 6), counts={"test": {"b": 1}})
    (tmp_path / "g" / "test" / "b").rename(tmp_path / "f" / "test" / "b")
    with pytest.raises(CorruptFileError, match="must share a size"):
        load_dataset(str(tmp_path / "f"), "test")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_image_raises(writers, tmp_path, fmt):
    writers.image_folder(tmp_path / "f", fmt=fmt, size=(16, 16), counts={"test": {"a": 2}})
    ext = "png" if fmt == "PNG" else "jpg"
    path = tmp_path / "f" / "test" / "a" / f"001.{ext}"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CorruptFileError, match=f"001.{ext}"):
        load_dataset(str(tmp_path / "f"), "test")


def test_garbage_image_and_truncated_archive_raise(writers, tmp_path, helpers):
    writers.image_folder(tmp_path / "f", counts={"test": {"a": 2}})
    (tmp_path / "f" / "test" / "a" / "002.png").write_bytes(b"not an image at all")
    with pytest.raises(CorruptFileError, match="002.png"):
        load_dataset(str(tmp_path / "f"), "test")
    writers.image_folder(tmp_path / "g", fmt="JPEG", counts={"test": {"a": 40}})
    archive = helpers.tar_gz(tmp_path / "g", tmp_path / "g.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match="g.tar.gz"):
        load_dataset(str(archive), "test")


def test_not_an_image_folder(tmp_path):
    (tmp_path / "empty" / "a" / "b").mkdir(parents=True)
    (tmp_path / "empty" / "c").mkdir()
    with pytest.raises(DatasetNotFoundError, match="not an image folder"):
        load_dataset(str(tmp_path / "empty"), "test")
    with pytest.raises(DatasetNotFoundError, match="unknown dataset"):
        load_dataset(str(tmp_path / "nowhere"), "test")


def test_truncated_jpeg_raises_even_if_pil_was_told_to_be_lenient(writers, tmp_path,
                                                                  monkeypatch):
    from PIL import ImageFile

    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    writers.image_folder(tmp_path / "f", fmt="JPEG", size=(32, 32), counts={"test": {"a": 1}})
    path = tmp_path / "f" / "test" / "a" / "000.jpg"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(CorruptFileError, match="000.jpg"):
        load_dataset(str(tmp_path / "f"), "test")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored afterwards


def test_every_truncation_of_an_archive_raises(writers, tmp_path, helpers):
    # tarfile alone may stop quietly at a member boundary: the gzip end check must catch it.
    writers.image_folder(tmp_path / "g", fmt="JPEG", counts={"test": {"a": 30}})
    full = helpers.tar_gz(tmp_path / "g", tmp_path / "g.tar.gz").read_bytes()
    cut_path = tmp_path / "cut.tar.gz"
    for cut in range(1, len(full), max(1, len(full) // 300)):
        cut_path.write_bytes(full[:cut])
        with pytest.raises(CorruptFileError, match="cut.tar.gz"):
            imagefolder.scan_archive(cut_path, "test")
    cut_path.write_bytes(full)
    assert len(imagefolder.scan_archive(cut_path, "test")[0]["a"]) == 30
