"""Entry point: ``rdcompress <command> ...``.

Each command lives in its own module exposing ``register(subparsers)``; adding a command is one
new module and one entry in ``COMMANDS``. The commands are loaded lazily: the top-level parser is
built from the static table below, and only the chosen command's module is imported (most of them
import torch, which takes seconds), so ``rdcompress --help`` and a bare ``rdcompress`` stay fast.
Known errors (``RDCompressError``) become a one-line message and exit code 2; set
``RDCOMPRESS_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rdcompress import __version__
from rdcompress.errors import RDCompressError


@dataclass(frozen=True)
class Command:
    help: str  # its line in the top-level listing (the module's add_parser(help=) says the same)
    module: str  # the module whose register(subparsers) adds the command's parser


# Order = order in --help.
COMMANDS: dict[str, Command] = {
    "sweep": Command("rate–distortion sweep: the main job (default: digits, no download)",
                     "rdcompress.cli.sweep"),
    "compare": Command("compare finished sweeps at equal file size (one frontier plot)",
                       "rdcompress.cli.compare"),
    "train": Command("train a zoo model deterministically", "rdcompress.cli.train"),
    "evaluate": Command("evaluate a model (and its distortion against an original)",
                        "rdcompress.cli.evaluate"),
    "importance": Command("compute per-weight importance on calibration data",
                          "rdcompress.cli.importance"),
    "compress": Command(
        "compress a model into a .rdz file: by a method, or to a target size or distortion",
        "rdcompress.cli.compress"),
    "recover": Command("recover accuracy: fine-tune a .rdz inside its structure",
                       "rdcompress.cli.recover"),
    "decompress": Command("decode a .rdz file into a .safetensors file",
                          "rdcompress.cli.decompress"),
    "export": Command("export a .rdz model to ONNX (kept compressed) or safetensors",
                      "rdcompress.cli.export"),
    "report": Command("one self-contained HTML page comparing the models of finished sweeps",
                      "rdcompress.cli.report"),
    "info": Command("per-layer table of a .rdz file: bits/weight, bytes, entropy, ratios",
                    "rdcompress.cli.info"),
    "bound": Command("rate-distortion lower bound of a linear model (Theorem 2)",
                     "rdcompress.cli.bound"),
    "width": Command("greedy compression of 3-layer MLPs of growing width (paper 3)",
                     "rdcompress.cli.width"),
    "datasets": Command("list datasets, or load one and summarise it", "rdcompress.cli.datasets"),
    "models": Command("list the model zoo", "rdcompress.cli.models"),
}

DESCRIPTION = """\
Compress trained PyTorch models by rate-distortion theory.

Typical flow:
  rdcompress train --model digits-mlp -o runs/digits.safetensors
  rdcompress evaluate runs/digits.safetensors
  rdcompress sweep                      # the main job, on the embedded digits data

Run 'rdcompress COMMAND --help' for the options of each command.
"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``rdcompress`` parser with ``command``'s full sub-parser (its module imported) and a
    bare placeholder, named and described from ``COMMANDS``, for every other command."""
    parser = argparse.ArgumentParser(
        prog="rdcompress", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rdcompress {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, entry in COMMANDS.items():
        if name == command:
            importlib.import_module(entry.module).register(subparsers)
        else:
            subparsers.add_parser(name, help=entry.help, add_help=False)
    return parser


def chosen_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` names: its first word that is not an option (the top-level parser
    takes only -h/--help and --version, which have no values), or None."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(chosen_command(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if not hasattr(args, "func"):  # argparse chose a command the word scan missed: load it
        args = build_parser(args.command).parse_args(argv)
    try:
        result = args.func(args)
    except RDCompressError as error:
        if os.environ.get("RDCOMPRESS_DEBUG"):
            raise
        print(f"rdcompress {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rdcompress {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
