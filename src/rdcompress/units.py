"""Units a user types: file sizes."""

from __future__ import annotations

import argparse

SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10,
              "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
    """'150KB' -> 150000, '1.5MB' -> 1500000, '2KiB' -> 2048, '1200' -> 1200 (bytes).

    Raises ``argparse.ArgumentTypeError`` (a ValueError's sibling that argparse prints as is),
    so that it serves directly as a flag's type."""
    clean = str(text).strip().upper().replace(" ", "")
    number = clean.rstrip("KMGIB")
    unit = clean[len(number):]
    try:
        value = float(number) * SIZE_UNITS[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; write e.g. 150KB, 1.5MB, 2KiB or 120000") from None
    if not (value >= 1 and value < 2**63):
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1 byte")
    return int(value)
