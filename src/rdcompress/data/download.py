"""Fetch missing dataset files from their canonical homes, verified, written atomically.

Transfers go through pooch (``http_download``: its HTTP downloader, into a temporary file);
the cache folder comes from platformdirs (``cache_root``: ``$XDG_CACHE_HOME/rdcompress`` or
``~/.cache/rdcompress`` on Linux, the platform's cache folder elsewhere). The fetch function is
injectable (``downloader(url, timeout) -> bytes``) so tests never touch the network. IDX
files are checked by the md5 of their decompressed content (mirrors re-make gzip wrappers);
CIFAR archives by the md5 of each batch inside, which are then unpacked into
``<download root>/<name>/<cifar-...>/``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import tempfile
import urllib.error
import zlib
from collections.abc import Callable
from pathlib import Path

from rdcompress._io import atomic_write_bytes
from rdcompress.data.registry import DatasetInfo
from rdcompress.errors import ChecksumError

Downloader = Callable[[str, float], bytes]
TIMEOUT_S = 10.0


class DownloadFailed(Exception):
    """Internal: no URL worked; the message lists each URL and why."""


def cache_root() -> Path:
    """The user's cache folder for rdcompress (platformdirs; honours ``XDG_CACHE_HOME``)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("rdcompress", appauthor=False))


def http_download(url: str, timeout: float = TIMEOUT_S) -> bytes:
    """GET ``url`` through pooch's HTTP downloader (short timeout, no progress bar).

    Failures surface as ``OSError`` (requests' exceptions are ``IOError``s), which
    ``_fetch_first`` turns into "try the next mirror".
    """
    import pooch

    downloader = pooch.HTTPDownloader(timeout=timeout, progressbar=False,
                                      headers={"User-Agent": "rdcompress"})
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "payload"
        downloader(url, str(target), None)
        return target.read_bytes()


# The default fetcher, under the name ``loaders`` (and the tests' fixture) look up.
urllib_download = http_download


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _fetch_first(urls: list[str], downloader: Downloader, check: Callable[[bytes], None]) -> bytes:
    """The first URL's payload that downloads and passes ``check``.

    A checksum mismatch on every URL that answered raises ChecksumError; network failures only
    raise DownloadFailed.
    """
    failures: list[str] = []
    mismatches: list[str] = []
    for url in urls:
        try:
            payload = downloader(url, TIMEOUT_S)
        except (urllib.error.URLError, OSError, TimeoutError, ValueError) as error:
            failures.append(f"{url}: {error}")
            continue
        try:
            check(payload)
        except ChecksumError as error:
            mismatches.append(f"{url}: {error}")
            continue
        return payload
    if mismatches:
        raise ChecksumError("downloaded data failed verification, nothing was saved: "
                            + "; ".join(mismatches + failures))
    raise DownloadFailed("; ".join(failures))


def download_idx(info: DatasetInfo, target: Path, downloader: Downloader) -> None:
    """Fetch the four ``.gz`` IDX files of ``info`` into ``target``."""
    for name in info.files:
        if (target / name).is_file() or (target / f"{name}.gz").is_file():
            continue
        expected = info.md5[name]

        def check(payload: bytes, name: str = name, expected: str = expected) -> None:
            try:
                content = gzip.decompress(payload)
            except (EOFError, OSError, zlib.error) as error:
                raise ChecksumError(f"{name}.gz is not a valid gzip stream ({error})") from error
            if _md5(content) != expected:
                raise ChecksumError(f"{name}: md5 of the decompressed content is "
                                    f"{_md5(content)}, expected {expected}")

        urls = [base + f"{name}.gz" for base in info.urls]
        atomic_write_bytes(target / f"{name}.gz", _fetch_first(urls, downloader, check))


def download_cifar(info: DatasetInfo, target: Path, downloader: Downloader) -> None:
    """Fetch the canonical CIFAR archive and unpack its verified batches into ``target``."""
    if info.archive is None or info.archive_dir is None:
        raise DownloadFailed(f"{info.name} has no canonical archive")
    members: dict[str, bytes] = {}

    def check(payload: bytes) -> None:
        members.clear()
        try:
            with tarfile.open(fileobj=io.BytesIO(payload), mode="r:*") as archive:
                for member in archive:
                    base = member.name.rsplit("/", 1)[-1]
                    if member.isfile() and base in info.files:
                        handle = archive.extractfile(member)
                        members[base] = handle.read() if handle else b""
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            raise ChecksumError(f"{info.archive} is not a readable archive ({error})") from error
        for name in info.files:
            if name not in members:
                raise ChecksumError(f"{info.archive} lacks {info.archive_dir}/{name}")
            if _md5(members[name]) != info.md5[name]:
                raise ChecksumError(f"{info.archive_dir}/{name}: md5 {_md5(members[name])}, "
                                    f"expected {info.md5[name]}")

    urls = [base + info.archive for base in info.urls]
    _fetch_first(urls, downloader, check)
    for name in info.files:
        atomic_write_bytes(target / info.archive_dir / name, members[name])


def download(info: DatasetInfo, target: Path, downloader: Downloader) -> None:
    """Fetch the files of ``info`` into ``target`` (raises DownloadFailed or ChecksumError)."""
    if info.format == "idx":
        download_idx(info, target, downloader)
    elif info.format == "cifar-pickle":
        download_cifar(info, target, downloader)
    else:
        raise DownloadFailed(f"{info.name} has no canonical download URL")
