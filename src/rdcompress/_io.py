"""Small file helpers: atomic writes and hashing. Originals are never modified in place."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    An exception (or an interrupt) inside the block removes the temporary file, so no
    half-written file ever appears under ``path``.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def state_dict_sha256(state: dict) -> str:
    """A content hash of a ``{name: tensor}`` mapping: names, dtypes, shapes and bytes.

    Used to tie importance files and ``.rdz`` manifests to the exact weights they were made from.
    Order-independent (names are sorted); device-independent (tensors are moved to CPU).
    """
    import numpy as np
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        if isinstance(value, torch.Tensor):
            tensor = value.detach().to("cpu").contiguous()
            dtype = str(tensor.dtype)
            shape = tuple(tensor.shape)
            raw = tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        else:
            array = np.ascontiguousarray(value)
            dtype, shape, raw = str(array.dtype), array.shape, array.tobytes()
        digest.update(f"{name}|{dtype}|{shape}|".encode())
        digest.update(raw)
    return digest.hexdigest()
