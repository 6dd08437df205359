"""Where dataset files are looked for, and the error that says where to put them.

Search order of roots: the explicit ``data_dir``, then ``$RDCOMPRESS_DATA_DIR`` (several
directories may be joined with ``os.pathsep``), then
``~/.cache/rdcompress/datasets`` (where downloads go), then ``/usr/share/datasets`` (Debian's
``dataset-*`` packages). Within a root the files may sit in ``<root>/<name>/``, in ``<root>/``,
or in the dataset's canonical sub-folders (``cifar-10-batches-py/``, ``MNIST/raw/``, ...), or
be the canonical archive (``cifar-10-python.tar.gz``, ``cifar10-jpeg.tar.gz``).
"""

from __future__ import annotations

import os
from pathlib import Path

from rdcompress.data.registry import DATASETS, DatasetInfo
from rdcompress.errors import DatasetNotFoundError

SYSTEM_DIR = Path("/usr/share/datasets")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def download_root() -> Path:
    """Where downloads go: the user's cache folder (platformdirs; ``$XDG_CACHE_HOME``, by
    default ``~/.cache``) / rdcompress / datasets."""
    from rdcompress.data.download import cache_root

    return cache_root() / "datasets"


def search_roots(data_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The data roots in search order (duplicates removed, missing ones kept)."""
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get("RDCOMPRESS_DATA_DIR")
    if env:
        roots.extend(Path(part).expanduser() for part in env.split(os.pathsep) if part)
    roots += [download_root(), SYSTEM_DIR]
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def candidate_dirs(info: DatasetInfo, root: Path) -> list[Path]:
    if info.format == "imagefolder":  # ROOT itself is never taken for an image folder
        return [root / info.name]
    dirs = [root / info.name, root]
    for sub in info.subdirs:
        dirs += [root / info.name / sub, root / sub]
    return dirs


def idx_file(directory: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``directory`` (the uncompressed one first)."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _has_files(info: DatasetInfo, directory: Path) -> bool:
    if info.format == "idx":
        return all(idx_file(directory, f) is not None for f in info.files)
    if info.format == "imagefolder":
        return is_image_folder(directory)
    return all((directory / f).is_file() for f in info.files)


def is_image_folder(directory: Path) -> bool:
    """True when ``directory`` holds ``<split>/<class>/`` folders (``train`` or ``test``)."""
    return any((directory / split).is_dir() for split in ("train", "test", "val"))


def locate(name: str, data_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """Where the files of dataset ``name`` are: a folder or an archive, or None if missing.

    For ``digits`` this is scikit-learn's bundled data file. For an image-folder path, the path
    itself when it exists.
    """
    info = DATASETS.get(name.lower())
    if info is None:
        path = Path(name.split(":", 1)[1] if name.startswith("imagefolder:") else name)
        return path if path.exists() else None
    if info.format == "sklearn":
        import sklearn.datasets

        path = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"
        return path if path.exists() else None
    for root in search_roots(data_dir):
        for directory in candidate_dirs(info, root):
            if directory.is_dir() and _has_files(info, directory):
                return directory
        if info.archive:
            for archive in (root / info.archive, root / info.name / info.archive):
                if archive.is_file():
                    return archive
    return None


def expected_files(info: DatasetInfo) -> list[str]:
    if info.format == "idx":
        return [f"{f}.gz" for f in info.files]
    if info.format == "imagefolder":
        return [f"{info.archive} (or a folder {info.name}/ with train/<class>/*.jpg)"]
    return list(info.files)


def missing_error(
    info: DatasetInfo, data_dir: str | os.PathLike[str] | None, reason: str
) -> DatasetNotFoundError:
    """A DatasetNotFoundError naming the files, the directories searched, and where to put them."""
    roots = search_roots(data_dir)
    target = roots[0] / info.name
    files = ", ".join(expected_files(info))
    alternatives = ""
    if info.archive and info.format == "cifar-pickle":
        alternatives = f" (or the canonical archive {info.archive}, or its {info.archive_dir}/)"
    hint = f"; {info.install_hint}" if info.install_hint else ""
    searched = ", ".join(str(r) for r in roots)
    return DatasetNotFoundError(
        f"dataset {info.name!r} not found: missing {files}{alternatives}. Searched the roots "
        f"{searched} (each as ROOT/{info.name}/ and ROOT/). Put the files in {target}/, or "
        f"pass --data-dir DIR / set RDCOMPRESS_DATA_DIR{hint}. {reason}"
    )
