"""Image folders ``ROOT/<split>/<class>/*.png|jpg``, as a directory or straight from a .tar.gz.

Images are decoded with PIL to RGB; all images of one split must share a size. Classes are the
sorted union of the class sub-folder names over all splits (so labels agree between splits);
files are taken in (class, path) order whatever the order in the archive. Decoded uint8 arrays
are cached as .npy under ``$RDCOMPRESS_CACHE_DIR`` (default ``~/.cache/rdcompress/cache``),
keyed by the archive's path, size and mtime (for a directory: every file's path, size, mtime).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rdcompress._io import atomic_write, atomic_write_text
from rdcompress.data.paths import IMAGE_SUFFIXES, is_image_folder
from rdcompress.data.verify import cache_dir
from rdcompress.errors import CorruptFileError, DatasetNotFoundError
from rdcompress.progress import progress

FIX = "Replace the damaged file (or re-download the archive)."
CACHE_VERSION = 1


@dataclass
class FolderSplit:
    images: np.ndarray | None  # (N, 3, H, W) uint8, None when the split folder is absent
    labels: np.ndarray | None  # (N,) int64
    classes: list[str]
    splits_present: list[str]


def _is_image(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith("._") and base.lower().endswith(IMAGE_SUFFIXES)


def _split_path(name: str) -> tuple[str, str, str] | None:
    """(prefix, split, class) of an archive member name, or None when not ``split/class/file``."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if len(parts) < 3:
        return None
    return "/".join(parts[:-3]), parts[-3], parts[-2]


def scan_archive(archive: Path, split: str):
    """One pass over a tar archive.

    Returns ({class: [(member, bytes)]} of ``split``, splits present, classes of all splits).
    """
    wanted: dict[str, list[tuple[str, bytes]]] = {}
    classes: set[str] = set()
    splits: set[str] = set()
    prefixes: set[str] = set()
    try:
        with _open_decompressed(archive) as raw, tarfile.open(fileobj=raw, mode="r|") as stream:
            for member in stream:
                if not member.isfile() or not _is_image(member.name):
                    continue
                located = _split_path(member.name)
                if located is None:
                    continue
                prefix, split_name, class_name = located
                prefixes.add(prefix)
                splits.add(split_name)
                classes.add(class_name)
                if split_name == split:
                    handle = stream.extractfile(member)
                    data = handle.read() if handle else b""
                    wanted.setdefault(class_name, []).append((member.name, data))
            # tarfile may stop quietly at a member boundary of a truncated stream; reading the
            # compressed stream to its end makes gzip check its end marker, length and CRC.
            while raw.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise CorruptFileError(f"{archive}: broken archive ({error}). {FIX}") from error
    if len(prefixes) > 1:
        raise CorruptFileError(f"{archive}: images sit under several top folders "
                               f"{sorted(prefixes)}; expected one ROOT/<split>/<class>/ layout")
    return wanted, sorted(splits), sorted(classes)


def _open_decompressed(archive: Path):
    """The archive as a binary stream, gunzipped when it is gzip (detected by magic)."""
    with open(archive, "rb") as handle:
        magic = handle.read(2)
    return gzip.open(archive, "rb") if magic == b"\x1f\x8b" else open(archive, "rb")


def folder_root(directory: Path) -> Path:
    """``directory`` itself, or its single sub-folder when that one holds the split folders."""
    if is_image_folder(directory):
        return directory
    subdirs = [d for d in directory.iterdir() if d.is_dir()]
    if len(subdirs) == 1 and is_image_folder(subdirs[0]):
        return subdirs[0]
    raise DatasetNotFoundError(
        f"{directory}: not an image folder; expected {directory}/<split>/<class>/*.png|jpg "
        f"with <split> among train, val, test"
    )


def _folder_splits(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir())


def scan_directory(root: Path, split: str) -> dict[str, list[tuple[str, bytes]]]:
    """{class: [(path, bytes)]} for ``root/split`` (the caller checked that it exists)."""
    out: dict[str, list[tuple[str, bytes]]] = {}
    for class_dir in sorted(d for d in (root / split).iterdir() if d.is_dir()):
        files = sorted(f for f in class_dir.iterdir() if f.is_file() and _is_image(f.name))
        out[class_dir.name] = [(str(f), f.read_bytes()) for f in files]
    return out


def decode_image(data: bytes, source: str) -> np.ndarray:
    """(3, H, W) uint8 RGB pixels of one PNG/JPEG file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes fully: a truncated file raises here
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CorruptFileError(f"{source}: cannot decode the image ({error}). {FIX}") from error
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def decode_split(
    members: dict[str, list[tuple[str, bytes]]], classes: list[str], desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """Decode {class: [(source, bytes)]} into ((N, 3, H, W) uint8, (N,) int64)."""
    items = [(classes.index(c), source, data)
             for c in sorted(members) for source, data in sorted(members[c])]
    if not items:
        raise DatasetNotFoundError(f"{desc}: the split folder holds no .png/.jpg images")
    from PIL import ImageFile

    images: list[np.ndarray] = []
    first_source = items[0][1]
    # Another library may have told PIL to pad truncated files silently; never here.
    lenient, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, False
    try:
        for _, source, data in progress(items, desc=f"decoding {desc}", total=len(items)):
            pixels = decode_image(data, source)
            if images and pixels.shape != images[0].shape:
                raise CorruptFileError(
                    f"{source} is {pixels.shape[2]}x{pixels.shape[1]} but {first_source} is "
                    f"{images[0].shape[2]}x{images[0].shape[1]}: all images of a split must "
                    f"share a size. Resize them first."
                )
            images.append(pixels)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    labels = np.array([label for label, _, _ in items], dtype=np.int64)
    return np.stack(images), labels


def _cache_key(location: Path) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{location.resolve()}|".encode())
    if location.is_file():
        stat = location.stat()
        digest.update(f"{stat.st_size}|{stat.st_mtime_ns}".encode())
    else:
        for path in sorted(location.rglob("*")):
            if path.is_file():
                stat = path.stat()
                digest.update(f"{path.relative_to(location)}|{stat.st_size}|"
                              f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _load_cache(stem: Path) -> FolderSplit | None:
    try:
        meta = json.loads(stem.with_suffix(".json").read_text())
        if meta.get("images") is None:
            return FolderSplit(None, None, meta["classes"], meta["splits"])
        images = np.load(stem.with_suffix(".images.npy"), allow_pickle=False)
        labels = np.load(stem.with_suffix(".labels.npy"), allow_pickle=False)
        if list(images.shape) != meta["images"] or labels.shape != (images.shape[0],) \
                or images.dtype != np.uint8:
            return None
        return FolderSplit(images, labels.astype(np.int64), meta["classes"], meta["splits"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no cache, or a damaged one: decode again


def _save_cache(stem: Path, result: FolderSplit) -> None:
    try:
        if result.images is not None and result.labels is not None:
            for suffix, array in ((".images.npy", result.images), (".labels.npy", result.labels)):
                with atomic_write(stem.with_suffix(suffix)) as handle:
                    np.save(handle, array, allow_pickle=False)
        shape = None if result.images is None else list(result.images.shape)
        atomic_write_text(stem.with_suffix(".json"), json.dumps(
            {"images": shape, "classes": result.classes, "splits": result.splits_present}))
    except OSError:
        pass  # an unwritable cache only costs decoding again next time


def read_image_folder(location: Path, split: str, use_cache: bool = True) -> FolderSplit:
    """Decode the ``split`` folder of an image folder (directory or tar archive)."""
    if not location.exists():
        raise DatasetNotFoundError(f"image folder {location} does not exist; expected a folder "
                                   f"ROOT/<split>/<class>/*.png|jpg or a .tar.gz of one")
    stem = cache_dir() / f"imagefolder-{_cache_key(location)}-{split}"
    if use_cache and (cached := _load_cache(stem)) is not None:
        return cached
    if location.is_file():
        members, splits, classes = scan_archive(location, split)
    else:
        root = folder_root(location)
        splits = _folder_splits(root)
        members = scan_directory(root, split) if split in splits else {}
        classes = sorted({c.name for s in splits for c in (root / s).iterdir() if c.is_dir()})
    if not splits:
        raise DatasetNotFoundError(f"{location}: no ROOT/<split>/<class>/*.png|jpg images found")
    result = FolderSplit(None, None, classes, splits)
    if split in splits:
        result.images, result.labels = decode_split(members, classes, f"{location} [{split}]")
    if use_cache:
        _save_cache(stem, result)
    return result

