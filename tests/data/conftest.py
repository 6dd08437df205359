"""Fixtures for rdcompress.data tests: an isolated environment and canonical-format writers.

The writers build files byte by byte (struct, pickle, tarfile, PIL) without going through the
package's own code, so that a parser bug cannot hide behind a matching writer bug.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from rdcompress.data import download as download_module
from rdcompress.data import paths as locate_module
from rdcompress.data import verify


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory, monkeypatch):
    """No real HOME, cache, env data dir, /usr/share/datasets or network in any test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RDCOMPRESS_CACHE_DIR", str(home / "cache"))
    monkeypatch.delenv("RDCOMPRESS_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(locate_module, "SYSTEM_DIR", home / "system-datasets")

    def no_network(url, timeout):
        raise OSError(f"network disabled in tests: {url}")

    monkeypatch.setattr(download_module, "urllib_download", no_network)
    verify.clear_memory()
    yield home
    verify.clear_memory()


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written out by hand (uint8 only): 0, 0, 0x08, ndim, big-endian dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.tobytes()


class Writers:
    """Writes small datasets in their canonical formats under ``root``."""

    def __init__(self, root: Path):
        self.root = root
        self.rng = np.random.default_rng(0)

    def mnist_arrays(self, n_train=60, n_test=20, size=28, classes=10):
        rng = self.rng
        return {
            "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, size, size), np.uint8),
            "train-labels-idx1-ubyte": (np.arange(n_train) % classes).astype(np.uint8),
            "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, size, size), np.uint8),
            "t10k-labels-idx1-ubyte": (np.arange(n_test) * 7 % classes).astype(np.uint8),
        }

    def mnist(self, directory: Path, gz: bool = True, **kwargs) -> dict[str, np.ndarray]:
        arrays = self.mnist_arrays(**kwargs)
        directory.mkdir(parents=True, exist_ok=True)
        for name, array in arrays.items():
            content = idx_bytes(array)
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(content))
            else:
                (directory / name).write_bytes(content)
        return arrays

    def cifar_batch(self, n: int, label_key: bytes, classes: int, py2: bool = True) -> dict:
        data = self.rng.integers(0, 256, (n, 3072), np.uint8)
        labels = [int(v) for v in self.rng.integers(0, classes, n)]
        if py2:  # the canonical files: bytes keys, as written by Python 2's cPickle
            return {b"batch_label": b"batch", label_key: labels, b"data": data,
                    b"filenames": [b"x.png"] * n}
        return {"batch_label": "batch", label_key.decode(): labels, "data": data}

    def cifar10(self, directory: Path, n: int = 6, test_n: int = 5) -> dict[str, dict]:
        directory.mkdir(parents=True, exist_ok=True)
        batches = {f"data_batch_{i}": self.cifar_batch(n, b"labels", 10) for i in range(1, 6)}
        batches["test_batch"] = self.cifar_batch(test_n, b"labels", 10, py2=False)
        for name, batch in batches.items():
            (directory / name).write_bytes(pickle.dumps(batch, protocol=2))
        meta = {b"label_names": [c.encode() for c in CIFAR10_NAMES], b"num_vis": 3072}
        (directory / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
        return batches

    def cifar100(self, directory: Path, n: int = 8, test_n: int = 4) -> dict[str, dict]:
        directory.mkdir(parents=True, exist_ok=True)
        batches = {"train": self.cifar_batch(n, b"fine_labels", 100),
                   "test": self.cifar_batch(test_n, b"fine_labels", 100)}
        for batch in batches.values():
            batch[b"coarse_labels"] = [0] * len(batch[b"fine_labels"])
        for name, batch in batches.items():
            (directory / name).write_bytes(pickle.dumps(batch, protocol=2))
        meta = {b"fine_label_names": [f"class{i:02d}".encode() for i in range(100)],
                b"coarse_label_names": [b"all"]}
        (directory / "meta").write_bytes(pickle.dumps(meta, protocol=2))
        return batches

    def image_folder(self, directory: Path, fmt: str = "PNG", size=(5, 4),
                     counts: dict | None = None) -> dict[tuple[str, str, str], bytes]:
        """ROOT/<split>/<class>/<i>.<ext>, random RGB; returns {(split, cls, file): bytes}."""
        from PIL import Image

        counts = counts or {"train": {"cat": 6, "ant": 4, "dog": 5}, "test": {"cat": 2, "ant": 2}}
        ext = "png" if fmt == "PNG" else "jpg"
        written = {}
        for split, per_class in counts.items():
            for class_name, count in per_class.items():
                folder = directory / split / class_name
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    pixels = self.rng.integers(0, 256, (size[1], size[0], 3), np.uint8)
                    buffer = io.BytesIO()
                    Image.fromarray(pixels, "RGB").save(buffer, format=fmt)
                    (folder / f"{i:03d}.{ext}").write_bytes(buffer.getvalue())
                    written[(split, class_name, f"{i:03d}.{ext}")] = buffer.getvalue()
        return written


def make_tar_gz(source_dir: Path, archive: Path, arcname: str | None = None) -> Path:
    """A .tar.gz of the *contents* of ``source_dir`` (or of the folder as ``arcname``)."""
    with tarfile.open(archive, "w:gz") as tar:
        if arcname is not None:
            tar.add(source_dir, arcname=arcname)
        else:
            for child in sorted(source_dir.iterdir(), reverse=True):  # not sorted on purpose
                tar.add(child, arcname=child.name)
    return archive


def decode_reference(data: bytes) -> np.ndarray:
    """(3, H, W) uint8 pixels as PIL decodes them (the reference for lossy JPEG)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).transpose(2, 0, 1)


CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]


@pytest.fixture
def writers(tmp_path) -> Writers:
    return Writers(tmp_path)


@pytest.fixture
def helpers():
    """The module-level helpers, for tests that need them (conftest cannot be imported)."""

    class Helpers:
        idx = staticmethod(idx_bytes)
        tar_gz = staticmethod(make_tar_gz)
        decode = staticmethod(decode_reference)

    return Helpers
