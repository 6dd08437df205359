"""Entry point: ``rdcompress <command> ...``.

Each command lives in its own module ``rdcompress.cli.<name>`` exposing
``register(subparsers)``; adding a command is one new module and one line in ``COMMANDS``.
Known errors (``RDCompressError``) become a one-line message and exit code 2; set
``RDCOMPRESS_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from rdcompress import __version__
from rdcompress.errors import RDCompressError

# Order = order in --help.
COMMANDS: tuple[str, ...] = (
    "sweep",
    "compare",
    "train",
    "evaluate",
    "importance",
    "compress",
    "decompress",
    "info",
    "bound",
    "width",
    "datasets",
    "models",
)

DESCRIPTION = """\
Compress trained PyTorch models by rate-distortion theory.

Typical flow:
  rdcompress train --model digits-mlp -o runs/digits.safetensors
  rdcompress evaluate runs/digits.safetensors
  rdcompress sweep                      # the main job, on the embedded digits data

Run 'rdcompress COMMAND --help' for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdcompress", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rdcompress {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"rdcompress.cli.{name.replace('-', '_')}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
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
