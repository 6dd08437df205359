"""Checksum verification of dataset files, cached by (path, size, mtime, member).

A canonical file is md5-checked once; the positive result is remembered in memory and in
``<cache dir>/verified.json`` so re-loads skip the hash. Files whose size is not the canonical
one (a user's own data in the same format) are structure-checked by the parsers but not
md5-checked: their status says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from rdcompress._io import atomic_write_text
from rdcompress.errors import ChecksumError

VERIFIED = "verified"
NOT_CANONICAL = "not checked (not the canonical size)"
NO_CHECKSUM = "no canonical checksum"

_memory: dict[str, bool] = {}
_loaded_from: set[Path] = set()


def cache_dir() -> Path:
    """Where decoded images and verification results are cached."""
    env = os.environ.get("RDCOMPRESS_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "rdcompress" / "cache"


def _key(path: Path, member: str) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{member}"


def _disk_file() -> Path:
    return cache_dir() / "verified.json"


def _load_disk() -> None:
    disk = _disk_file()
    if disk in _loaded_from:
        return
    _loaded_from.add(disk)
    try:
        _memory.update({key: True for key in json.loads(disk.read_text())})
    except (OSError, ValueError, TypeError):
        pass  # no cache yet, or an unreadable one: verify again


def _remember(key: str) -> None:
    _memory[key] = True
    try:
        disk = _disk_file()
        known = set(json.loads(disk.read_text())) if disk.exists() else set()
        atomic_write_text(disk, json.dumps(sorted(known | {key})))
    except (OSError, ValueError, TypeError):
        pass  # a read-only cache only costs a re-hash next time


def check_md5(
    path: Path, member: str, content: bytes, expected: str | None, canonical_size: bool,
    what: str = "content",
) -> str:
    """Return the verification status of ``content`` (read from ``path``, ``member``).

    Raises ChecksumError when the content has the canonical size but not the canonical md5.
    """
    if expected is None:
        return NO_CHECKSUM
    if not canonical_size:
        return NOT_CANONICAL
    key = _key(path, member)
    _load_disk()
    if _memory.get(key):
        return VERIFIED
    actual = hashlib.md5(content).hexdigest()
    if actual != expected:
        where = f"{path}" + (f" (member {member})" if member and member != path.name else "")
        raise ChecksumError(
            f"{where}: md5 of the {what} is {actual}, expected the canonical {expected}. "
            f"The file is corrupted or not the canonical one: delete it and download it again, "
            f"or replace it with the canonical file."
        )
    _remember(key)
    return VERIFIED


def clear_memory() -> None:
    """Forget in-process verification results (tests use this to force a re-hash)."""
    _memory.clear()
    _loaded_from.clear()
