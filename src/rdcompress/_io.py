"""Small file helpers: atomic writes and hashing. Originals are never modified in place.

Atomic writes go through a temporary file beside the target, named
``.<target name>.<pid>.<8 hex>.rdcompress-tmp`` (``TEMP_SUFFIX``), then renamed over it. A
write killed before the rename leaves such a file; the next write to the same path removes
every one whose process (the ``<pid>``) no longer runs. The target keeps its mode; a new file
gets the mode a plain ``open()`` gives under the umask. Problems with the path itself (a parent
that is a file, a directory as the target, no permission) are
``OutputPathError``s (a ``ConfigError``) naming the path.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from rdcompress.errors import OutputPathError

TEMP_SUFFIX = ".rdcompress-tmp"


def temp_name(target: Path, pid: int | None = None) -> str:
    """The documented name of a temporary file for ``target`` (see the module docstring)."""
    return f".{target.name}.{os.getpid() if pid is None else pid}.{secrets.token_hex(4)}" \
        f"{TEMP_SUFFIX}"


def stale_temp_files(target: str | os.PathLike[str]) -> list[Path]:
    """Temporary files of writes to ``target`` whose writing process is gone."""
    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[0-9a-f]{8}"
                         + re.escape(TEMP_SUFFIX) + "$")
    stale = []
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            found = pattern.match(entry.name)
            if found and not _process_alive(int(found.group(1))):
                stale.append(entry)
    return sorted(stale)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another write of ours, in another thread: not stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process (or a pid we cannot ask about): leave it
    return True


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: 0o666 minus the process umask."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status") as status:  # Linux: read without changing it
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: read by setting (briefly) and restoring
    os.umask(mask)
    return 0o666 & ~mask


def check_writable(path: str | os.PathLike[str]) -> Path:
    """OutputPathError unless ``path`` can be written as a file: not a directory, every existing
    parent a directory, the nearest existing one writable. Checked before long work starts."""
    target = Path(path)
    if target.is_dir():
        raise OutputPathError(f"output {str(target)!r} is a directory; give a file name inside it, "
                          f"e.g. {str(target / 'out')!r}")
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"cannot write {str(target)!r}: {str(ancestor)!r} is a file, not a "
                          "directory; choose another output path")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {str(target)!r}: no permission to write in "
                          f"{str(ancestor)!r}; choose a directory you can write to")
    return target


def _path_error(target: Path, error: OSError) -> OutputPathError:
    reasons = {errno.EACCES: "no permission", errno.EPERM: "not permitted",
               errno.ENOTDIR: "a parent of it is a file, not a directory",
               errno.EEXIST: "a parent of it is a file, not a directory",
               errno.EISDIR: "it is a directory", errno.EROFS: "the file system is read-only",
               errno.ENOSPC: "no space left on the device"}
    reason = reasons.get(error.errno or 0, error.strerror or type(error).__name__)
    return OutputPathError(f"cannot write {str(target)!r}: {reason}; choose another output path")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    An exception (or an interrupt) inside the block removes the temporary file, so no
    half-written file ever appears under ``path``; a killed process leaves a file that the next
    write to ``path`` removes (module docstring). The target keeps its permission bits.
    """
    target = check_writable(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        file_mode = (os.stat(target).st_mode & 0o7777) if target.exists() else new_file_mode()
        for stale in stale_temp_files(target):
            with contextlib.suppress(OSError):
                stale.unlink()
        tmp = target.parent / temp_name(target)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as error:
        raise _path_error(target, error) from error
    try:
        with os.fdopen(fd, mode) as handle:
            os.fchmod(handle.fileno(), file_mode)
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.replace(tmp, target)
        except OSError as error:
            raise _path_error(target, error) from error
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
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
            # viewed flat: a 0-d tensor (BatchNorm's num_batches_tracked) has no byte view
            raw = tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        else:
            array = np.ascontiguousarray(value)
            dtype, shape, raw = str(array.dtype), array.shape, array.tobytes()
        digest.update(f"{name}|{dtype}|{shape}|".encode())
        digest.update(raw)
    return digest.hexdigest()
