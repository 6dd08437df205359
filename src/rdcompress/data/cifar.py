"""CIFAR-10/100 python pickle batches, read without running arbitrary code.

The canonical files are Python-2 pickles of dicts ``{b"data": (n, 3072) uint8, b"labels": [...]}``
(CIFAR-100: ``b"fine_labels"``/``b"coarse_labels"``), row-major R, G, B planes of 32x32. Pickle
can call any importable function, so ``SafeUnpickler`` allows only numpy's array reconstruction
and ``_codecs.encode`` (how numpy arrays pickle their bytes); anything else is refused.
The batches are read from a folder or straight from the canonical ``.tar.gz`` archive.
"""

from __future__ import annotations

import io
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np

from rdcompress.errors import CorruptFileError

FIX = "Delete it and download it again, or replace it with an intact copy."

_ALLOWED: dict[tuple[str, str], object] = {}


def _allowed_globals() -> dict[tuple[str, str], object]:
    if not _ALLOWED:
        import codecs

        try:
            from numpy._core import multiarray, numeric
        except ImportError:  # numpy < 2
            from numpy.core import multiarray, numeric  # type: ignore[no-redef]

        reconstruct = multiarray._reconstruct
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            _ALLOWED[(module, "_reconstruct")] = reconstruct
            _ALLOWED[(module, "scalar")] = multiarray.scalar
        for module in ("numpy.core.numeric", "numpy._core.numeric"):
            _ALLOWED[(module, "_frombuffer")] = getattr(numeric, "_frombuffer")  # noqa: B009
        _ALLOWED[("numpy", "ndarray")] = np.ndarray
        _ALLOWED[("numpy", "dtype")] = np.dtype
        _ALLOWED[("_codecs", "encode")] = codecs.encode
    return _ALLOWED


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only numpy array reconstruction globals."""

    def find_class(self, module: str, name: str):
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays are allowed"
            )
        return allowed[(module, name)]


def safe_unpickle(content: bytes, source: str) -> object:
    """Unpickle ``content`` with ``SafeUnpickler`` (bytes kept as bytes, as CIFAR needs)."""
    try:
        return SafeUnpickler(io.BytesIO(content), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, MemoryError, UnicodeDecodeError, struct.error) as error:
        raise CorruptFileError(
            f"{source}: not a readable CIFAR pickle ({type(error).__name__}: {error}). {FIX}"
        ) from error


def _as_str_keys(obj: object, source: str) -> dict[str, object]:
    if not isinstance(obj, dict):
        raise CorruptFileError(f"{source}: expected a pickled dict, got {type(obj).__name__}. "
                               f"{FIX}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def parse_batch(content: bytes, source: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 3, 32, 32) uint8, labels (n,) int64) of one pickled batch."""
    batch = _as_str_keys(safe_unpickle(content, source), source)
    if "data" not in batch or label_key not in batch:
        raise CorruptFileError(f"{source}: a CIFAR batch needs keys 'data' and {label_key!r}; "
                               f"found {sorted(batch)}. {FIX}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        got = f"{data.shape} {data.dtype}" if isinstance(data, np.ndarray) else type(data)
        raise CorruptFileError(f"{source}: 'data' must be an (n, 3072) uint8 array; got {got}. "
                               f"{FIX}")
    try:
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (TypeError, ValueError) as error:
        raise CorruptFileError(f"{source}: {label_key!r} is not a list of integers. {FIX}") \
            from error
    if labels.shape != (data.shape[0],):
        raise CorruptFileError(f"{source}: {data.shape[0]} images but {labels.shape} labels. "
                               f"{FIX}")
    return data.reshape(-1, 3, 32, 32), labels


def parse_meta(content: bytes, source: str, names_key: str) -> list[str]:
    """The class names stored in ``batches.meta`` / ``meta``."""
    meta = _as_str_keys(safe_unpickle(content, source), source)
    names = meta.get(names_key)
    if not isinstance(names, list) or not names:
        raise CorruptFileError(f"{source}: expected a list {names_key!r} of class names; found "
                               f"keys {sorted(meta)}. {FIX}")
    return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]


class BatchSource:
    """Reads batch files from a folder or from the members of a ``.tar.gz`` archive."""

    def __init__(self, location: Path, archive_dir: str | None):
        self.location = location
        self.archive_dir = archive_dir
        self._members: dict[str, bytes] | None = None

    @property
    def is_archive(self) -> bool:
        return self.location.is_file()

    def _read_archive(self, wanted: set[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        try:
            with tarfile.open(self.location, "r:*") as archive:
                for member in archive:
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in wanted and base not in found:
                        handle = archive.extractfile(member)
                        found[base] = handle.read() if handle else b""
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise CorruptFileError(f"{self.location}: broken archive ({error}). {FIX}") from error
        return found

    def read(self, names: list[str]) -> dict[str, bytes]:
        """{name: bytes}; missing names raise CorruptFileError (archive) or are absent (dir)."""
        if not self.is_archive:
            out = {}
            for name in names:
                try:
                    out[name] = (self.location / name).read_bytes()
                except OSError as error:
                    raise CorruptFileError(f"{self.location / name}: cannot read ({error}). "
                                           f"{FIX}") from error
            return out
        found = self._read_archive(set(names))
        missing = [n for n in names if n not in found]
        if missing:
            raise CorruptFileError(f"{self.location}: archive lacks {missing} (expected in "
                                   f"{self.archive_dir}/). {FIX}")
        return found

    def path_of(self, name: str) -> tuple[Path, str]:
        """(file whose stat keys the checksum cache, member label)."""
        if self.is_archive:
            return self.location, f"{self.archive_dir}/{name}"
        return self.location / name, name
