"""Shared argument groups and output helpers for CLI commands."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rdcompress._io import atomic_write_text, check_writable
from rdcompress.errors import ConfigError, OutputPathError

MODEL_HELP = (
    "the model: a .safetensors file with its sidecar .json (from 'rdcompress train'), a "
    "compressed .rdz file, a zoo name (see 'rdcompress models') with --weights, or a "
    "checkpoint file with --arch"
)


def comma_list(kind: type, choices: Sequence[str] | None = None) -> Any:
    """An argparse ``type=`` for comma lists: ``comma_list(float)("0.1,0.2")`` -> (0.1, 0.2).

    With ``choices``, every item must be one of them (a usage error, exit 2, names them)."""
    label = {int: "integers", float: "numbers", str: "names"}[kind]

    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(v.strip()) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of {label}") from None
        unknown = [v for v in values if choices is not None and v not in choices]
        if unknown:
            where = f" in {text!r}" if len(values) > 1 else ""
            raise argparse.ArgumentTypeError(
                f"{', '.join(map(repr, unknown))}{where}: choose from "
                f"{', '.join(map(str, choices or ()))} (comma-separated)")
        return values

    parse.__name__ = f"comma-separated {label}"  # argparse names the type in its errors
    return parse


def add_alias(container: Any, action: argparse.Action, *flags: str) -> argparse.Action:
    """Old option strings of ``action`` that keep working but are hidden from --help.

    ``container`` is the parser or group that holds ``action``; the alias stores into the same
    ``dest`` with the same type and choices, and has no default of its own (the canonical
    option's default stands)."""
    return container.add_argument(
        *flags, dest=action.dest, type=action.type, choices=action.choices,
        metavar=action.metavar, help=argparse.SUPPRESS, default=argparse.SUPPRESS)


def temperature(text: str) -> float | str:
    """An argparse ``type=`` for an importance temperature: a number, or 'auto'."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or 'auto'") from None


temperature.__name__ = "temperature"  # argparse names the type in its errors


def check_dataset(name: str | None, flag: str = "--data") -> None:
    """ConfigError before any work when ``name`` is neither a known dataset nor an existing
    path (an image folder or a .tar.gz of one); None (the model's own dataset) passes."""
    if name is None:
        return
    from rdcompress.data import DATASETS

    path = Path(name.removeprefix("imagefolder:")).expanduser()
    if name.lower() not in DATASETS and not path.exists():
        raise ConfigError(f"{flag} {name!r} is not a known dataset or an existing path: use one "
                          f"of {', '.join(sorted(DATASETS))}, or the path of an image folder "
                          "ROOT/<split>/<class>/*.png|jpg (or a .tar.gz of one); "
                          "'rdcompress datasets' lists them")


def positive_int(text: str) -> int:
    """An argparse ``type=`` for counts that must be >= 1 (--batch-size, --limit, ...)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be a positive integer (>= 1)")
    return value


positive_int.__name__ = "positive integer"  # argparse names the type in its errors


def model_files(model: str | None, weights: str | None = None) -> dict[str, str]:
    """The files a MODEL argument reads: the file itself, its sidecar .json, and --weights."""
    files: dict[str, str] = {}
    if model and (Path(model).suffix or Path(model).is_file()):
        files["MODEL"] = model
        if Path(model).suffix != ".rdz":
            files["MODEL's sidecar"] = str(Path(model).with_suffix(".json"))
    if weights:
        files["--weights"] = weights
    return files


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links and symlinks included
    except OSError:  # one does not exist (yet): compare where they would be
        return Path(a).resolve() == Path(b).resolve()


def check_outputs(outputs: Mapping[str, str | os.PathLike[str] | None],
                  inputs: Mapping[str, str | os.PathLike[str] | None]) -> None:
    """ConfigError, before any work, if an output would overwrite an input or another output,
    or cannot be written (a directory, a parent that is a file, no permission)."""
    given = {flag: path for flag, path in outputs.items() if path is not None}
    sources = {flag: path for flag, path in inputs.items() if path is not None}
    for flag, path in given.items():
        for source_flag, source in sources.items():
            if _same_file(path, source):
                raise ConfigError(
                    f"{flag} {os.fspath(path)!r} is the same file as {source_flag} "
                    f"{os.fspath(source)!r}; writing it would destroy the input. Choose "
                    "another output path.")
    flags = list(given)
    for i, flag in enumerate(flags):
        for other in flags[i + 1:]:
            if _same_file(given[flag], given[other]):
                raise ConfigError(f"{flag} and {other} are the same file "
                                  f"{os.fspath(given[flag])!r}; give them different paths.")
        check_writable(given[flag])


def check_output_dir(flag: str, path: str | os.PathLike[str]) -> None:
    """OutputPathError before any work if ``path`` cannot be an output directory."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise OutputPathError(f"{flag} {str(target)!r} is a file, not a directory; choose a "
                              "directory (it is created if missing)")
    check_writable(target / "probe")


def add_model_arguments(parser: argparse.ArgumentParser, name: str = "model") -> None:
    parser.add_argument(name, metavar=name.upper(), help=MODEL_HELP)
    parser.add_argument("--weights", help="weights file (safetensors or torch.save) for a zoo "
                        "name or package.module:factory MODEL")
    parser.add_argument("--arch", help="architecture of a checkpoint MODEL without a sidecar, or "
                        "of a .rdz whose file names no zoo model: a zoo name or "
                        "package.module:factory (the code you name here is run)")
    add_trust_argument(parser)


TRUST_HELP = (
    "let a sidecar .json or .rdz manifest that names package.module:factory code import and run "
    "it; only for files whose author you trust (default: such files are refused; --arch names "
    "the code yourself instead)"
)


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-code", action="store_true", help=TRUST_HELP)


def add_data_arguments(parser: argparse.ArgumentParser, split: str = "test") -> None:
    parser.add_argument("--data", help="dataset: digits, mnist, fashion-mnist, cifar10, cifar100, "
                        "cifar10-jpeg, or an image-folder path/.tar.gz (default: the model's)")
    parser.add_argument("--data-dir", help="where dataset files are (default: "
                        "$RDCOMPRESS_DATA_DIR, ~/.cache/rdcompress/datasets, /usr/share/datasets)")
    parser.add_argument("--split", default=split, choices=["train", "val", "test"],
                        help=f"which split to use (default: {split})")
    parser.add_argument("--limit", type=positive_int,
                        help="use only the first N samples of the split")
    parser.add_argument("--batch-size", type=positive_int, default=256,
                        help="batch size (default: 256)")


def format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3e}"
        return f"{value:.4f}"
    return str(value)


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """A plain aligned text table (stdout), one row per dict."""
    if not rows:
        print("(no rows)")
        return
    columns = list(columns or rows[0].keys())
    cells = [[format_value(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
