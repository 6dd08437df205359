"""Progress bars for long work: tqdm, shown on a terminal, silent in CI and when piped."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    if os.environ.get("RDCOMPRESS_PROGRESS") == "1":
        return True
    if os.environ.get("RDCOMPRESS_PROGRESS") == "0" or os.environ.get("CI"):
        return False
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, **kwargs: Any):
    """Wrap ``iterable`` in a tqdm bar on stderr when progress output is enabled."""
    return tqdm(
        iterable, desc=desc, total=total, disable=not progress_enabled(), leave=False,
        dynamic_ncols=True, **kwargs,
    )
