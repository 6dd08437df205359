"""Progress for long work: a tqdm bar on a terminal, a plain heartbeat line in logs.

``RDCOMPRESS_PROGRESS=1`` always draws bars, ``=0`` is silent. Otherwise: a terminal gets bars;
piped output (CI, log files) gets one line such as ``sweep: 3/25 run (12%), 41 s`` at most every
``HEARTBEAT_SECONDS``, so that a long job is never silent for minutes.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm
from tqdm.std import tqdm as std_tqdm

T = TypeVar("T")
HEARTBEAT_SECONDS = 30.0


def progress_mode() -> str:
    """"bar", "heartbeat" or "off"."""
    setting = os.environ.get("RDCOMPRESS_PROGRESS")
    if setting == "1":
        return "bar"
    if setting == "0":
        return "off"
    return "bar" if sys.stderr.isatty() and not os.environ.get("CI") else "heartbeat"


def progress_enabled() -> bool:
    return progress_mode() == "bar"


class Heartbeat(std_tqdm):
    """tqdm that writes one plain line per refresh (its mininterval) instead of a bar."""

    _printed_at = 0.0  # time.monotonic() of the last line
    _printed_n = 0  # and its count

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:
        now = time.monotonic()
        # not the opening 0/N, not the clearing on close, not a postfix change in between
        if (msg is None and self.n > self._printed_n
                and now - self._printed_at >= self.mininterval):
            self._printed_at, self._printed_n = now, self.n
            total = f"/{self.total}" if self.total else ""
            share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
            elapsed = self.format_dict["elapsed"]
            print(f"{self.desc or 'working'}: {self.n}{total} {self.unit}{share}, "
                  f"{elapsed:.0f} s", file=sys.stderr, flush=True)
        return True


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, **kwargs: Any):
    """Wrap ``iterable`` in a progress display on stderr (see the module docstring)."""
    mode = progress_mode()
    if mode == "heartbeat":
        return Heartbeat(iterable, desc=desc, total=total, mininterval=HEARTBEAT_SECONDS,
                         maxinterval=HEARTBEAT_SECONDS, leave=False, file=io.StringIO(),
                         **kwargs)  # tqdm's own writes (its clearing) go nowhere
    return tqdm(
        iterable, desc=desc, total=total, disable=mode == "off", leave=False,
        dynamic_ncols=True, **kwargs,
    )
