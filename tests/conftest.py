"""Shared test fixtures. Tests never touch the network and make their own small data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Keep dataset/cache lookups away from the user's home directory and from the network."""
    cache = tmp_path_factory.getbasetemp() / "rdcompress-cache"
    monkeypatch.setenv("RDCOMPRESS_CACHE_DIR", str(cache))
    monkeypatch.setenv("RDCOMPRESS_PROGRESS", "0")
    monkeypatch.setenv("RDCOMPRESS_NO_DOWNLOAD", "1")
    yield


def _shared_data_or_skip(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: this test needs the shared data directory "
                    "../shared/data beside the repository")
    return path


@pytest.fixture
def shared_data():
    """``shared_data("mnist", "file")`` -> the path under ../shared/data, or skip with a reason."""
    return _shared_data_or_skip


os.environ.setdefault("RDCOMPRESS_PROGRESS", "0")
