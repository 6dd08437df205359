"""``load_dataset``: find (or fetch) the files of a dataset, parse them, cut the split."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rdcompress.data import download as _download
from rdcompress.data.cifar import BatchSource, parse_batch, parse_meta
from rdcompress.data.dataset import ImageDataset
from rdcompress.data.idx import read_idx
from rdcompress.data.imagefolder import read_image_folder
from rdcompress.data.paths import download_root, idx_file, locate, missing_error
from rdcompress.data.registry import (
    DATASETS,
    DIGITS_TEST_FRACTION,
    DIGITS_VAL_FRACTION,
    IDX_FILES,
    IMAGEFOLDER_VAL_FRACTION,
    SPLIT_SEED,
    SPLITS,
    DatasetInfo,
)
from rdcompress.data.splits import fraction_count, stratified_carve, train_val_indices
from rdcompress.data.verify import NO_CHECKSUM, NOT_CANONICAL, VERIFIED, check_md5
from rdcompress.errors import ChecksumError, ConfigError, CorruptFileError, DatasetNotFoundError

PathLike = str | os.PathLike[str]


def load_dataset(
    name: str, split: str = "train", data_dir: PathLike | None = None, download: bool = True,
    *, downloader: _download.Downloader | None = None,
) -> ImageDataset:
    """Load one split of a dataset as an ``ImageDataset``.

    name: a registered name (see ``DATASETS``), a path to an image folder or a .tar.gz of one,
    or ``"imagefolder:PATH"``. split: "train" | "val" | "test" | "trainval".
    ``downloader(url, timeout) -> bytes`` replaces the network fetch (tests inject a fake).
    """
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not one of {list(SPLITS)}")
    info = DATASETS.get(name.lower())
    if info is None:
        path = Path(name.split(":", 1)[1] if name.startswith("imagefolder:") else name)
        path = path.expanduser()
        if not path.exists():
            raise DatasetNotFoundError(
                f"unknown dataset {name!r}: expected one of {sorted(DATASETS)}, or the path of an "
                f"image folder ROOT/<split>/<class>/*.png|jpg (or a .tar.gz of one)"
            )
        return _load_folder(path, split, name=str(path))
    if info.format == "sklearn":
        return load_digits(split)
    location = locate(info.name, data_dir)
    if location is None:
        location = _fetch(info, data_dir, download, downloader)
    if info.format == "idx":
        return _carve_val(lambda part: _load_idx(info, location, part), split, info.val_count)
    if info.format == "cifar-pickle":
        return _carve_val(lambda part: _load_cifar(info, location, part), split, info.val_count)
    return _load_folder(location, split, name=info.name)


def _fetch(info: DatasetInfo, data_dir, download: bool, downloader) -> Path:
    if not download:
        raise missing_error(info, data_dir, "Downloading is off (download=False).")
    if not info.urls:
        raise missing_error(info, data_dir, "It has no canonical download URL.")
    target = download_root() / info.name
    try:
        _download.download(info, target, downloader or _download.urllib_download)
    except _download.DownloadFailed as error:
        raise missing_error(info, data_dir, f"Downloading into {target} failed: {error}") \
            from None
    except ChecksumError as error:
        raise ChecksumError(f"{info.name}: {error}. Put the canonical files in {target}/ by "
                            f"hand, or retry later.") from None
    location = locate(info.name, data_dir)
    if location is None:  # the download wrote somewhere locate does not look: a bug
        raise missing_error(info, data_dir, f"Downloaded into {target} but did not find it.")
    return location


def _carve_val(load_part, split: str, val_count: int | None) -> ImageDataset:
    """Cut "train"/"val" out of the canonical train part; "trainval" is all of it."""
    if split == "test":
        return load_part("test")
    full = load_part("train")
    if split == "trainval":
        full.split = "trainval"
        return full
    if val_count is None or val_count >= len(full):
        val_count = fraction_count(len(full), IMAGEFOLDER_VAL_FRACTION)
    train_idx, val_idx = train_val_indices(full.labels.numpy(), val_count, SPLIT_SEED)
    return full.subset(train_idx if split == "train" else val_idx, split)


def load_digits(split: str) -> ImageDataset:
    """scikit-learn's digits, pixels 0..16 kept exactly (scale 16); seeded 60/20/20 split."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    pixels = np.asarray(bunch.images)  # (1797, 8, 8) float64 holding integers 0..16
    if not np.array_equal(pixels, np.round(pixels)) or pixels.min() < 0 or pixels.max() > 16:
        raise CorruptFileError("scikit-learn's digits are not integers in 0..16; reinstall "
                               "scikit-learn")
    images = pixels.astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    labels = np.asarray(bunch.target, dtype=np.int64)
    total = len(labels)
    test_idx, val_idx, train_idx = stratified_carve(
        labels, [fraction_count(total, DIGITS_TEST_FRACTION),
                 fraction_count(total, DIGITS_VAL_FRACTION)], SPLIT_SEED)
    chosen = {"train": train_idx, "val": val_idx, "test": test_idx,
              "trainval": np.sort(np.concatenate([train_idx, val_idx]))}[split]
    return ImageDataset(images[chosen], labels[chosen], DATASETS["digits"].classes, "digits",
                        split, scale=16.0, source=locate("digits"),
                        checksums={"sklearn digits": "bundled with scikit-learn"})


def _load_idx(info: DatasetInfo, directory: Path, part: str) -> ImageDataset:
    arrays, status = [], {}
    for role in (f"{part}-images", f"{part}-labels"):
        canonical = IDX_FILES[role]
        path = idx_file(directory, canonical)
        if path is None:
            raise missing_error(info, directory, f"{directory} lacks {canonical}[.gz].")
        array, content = read_idx(path)
        status[path.name] = check_md5(
            path, path.name, content, info.md5.get(canonical),
            len(content) == info.canonical_sizes.get(canonical), "decompressed content")
        arrays.append((path, array))
    (image_path, images), (label_path, labels) = arrays
    if images.dtype != np.uint8 or images.ndim != 3:
        raise CorruptFileError(f"{image_path}: expected (N, H, W) uint8 images; got "
                               f"{images.shape} {images.dtype}. Replace the file.")
    if labels.dtype != np.uint8 or labels.shape != (len(images),):
        raise CorruptFileError(f"{label_path}: expected ({len(images)},) uint8 labels to match "
                               f"{image_path.name}; got {labels.shape} {labels.dtype}.")
    _check_labels(labels, len(info.classes), label_path)
    return ImageDataset(images[:, None], labels, info.classes, info.name, part,
                        source=directory, checksums=status)


def _check_labels(labels: np.ndarray, num_classes: int, source) -> None:
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise CorruptFileError(f"{source}: labels range over [{labels.min()}, {labels.max()}], "
                               f"expected [0, {num_classes}). Replace the file.")


def _load_cifar(info: DatasetInfo, location: Path, part: str) -> ImageDataset:
    cifar100 = info.name == "cifar100"
    label_key = "fine_labels" if cifar100 else "labels"
    meta_name, names_key = ("meta", "fine_label_names") if cifar100 else \
        ("batches.meta", "label_names")
    batch_names = [f for f in info.files if f != meta_name and (f.startswith("test") ==
                                                                 (part == "test"))]
    source = BatchSource(location, info.archive_dir)
    contents = source.read(batch_names + [meta_name])
    status: dict[str, str] = {}
    images, labels = [], []
    for name in batch_names:
        path, member = source.path_of(name)
        batch_images, batch_labels = parse_batch(contents[name], f"{path}:{member}", label_key)
        status[member] = check_md5(path, member, contents[name], info.md5.get(name),
                                   len(batch_labels) == info.canonical_sizes.get(name),
                                   "pickled batch")
        images.append(batch_images)
        labels.append(batch_labels)
    path, member = source.path_of(meta_name)
    classes = parse_meta(contents[meta_name], f"{path}:{member}", names_key)
    status[member] = _meta_status(contents[meta_name], info.md5.get(meta_name))
    all_labels = np.concatenate(labels)
    _check_labels(all_labels, len(classes), location)
    return ImageDataset(np.concatenate(images), all_labels, classes, info.name, part,
                        source=location, checksums=status)


def _meta_status(content: bytes, expected: str | None) -> str:
    import hashlib

    if expected is None:
        return NO_CHECKSUM
    return VERIFIED if hashlib.md5(content).hexdigest() == expected else NOT_CANONICAL


def _load_folder(location: Path, split: str, name: str) -> ImageDataset:
    def part(split_dir: str):
        return read_image_folder(location, split_dir)

    def build(images, labels, classes, split_name) -> ImageDataset:
        return ImageDataset(images, labels, classes, name, split_name, source=location,
                            checksums={location.name: NO_CHECKSUM})

    if split == "test":
        test = part("test")
        if test.images is None:
            raise DatasetNotFoundError(f"{location}: no test/ folder; found splits "
                                       f"{test.splits_present}")
        return build(test.images, test.labels, test.classes, "test")
    train = part("train")
    if train.images is None:
        raise DatasetNotFoundError(f"{location}: no train/ folder; found splits "
                                   f"{train.splits_present}")
    if "val" not in train.splits_present:  # carve val out of train/
        full = build(train.images, train.labels, train.classes, "trainval")
        count = fraction_count(len(full), IMAGEFOLDER_VAL_FRACTION)
        return _carve_val(lambda _: full, split, count)
    if split == "train":
        return build(train.images, train.labels, train.classes, "train")
    val = part("val")
    if split == "val":
        return build(val.images, val.labels, val.classes, "val")
    if val.images.shape[1:] != train.images.shape[1:]:
        raise CorruptFileError(f"{location}: val/ images are {val.images.shape[2:]} but train/ "
                               f"images are {train.images.shape[2:]}; they must share a size")
    return build(np.concatenate([train.images, val.images]),
                 np.concatenate([train.labels, val.labels]), train.classes, "trainval")
