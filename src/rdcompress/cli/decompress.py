"""``rdcompress decompress``: a ``.rdz`` file back to plain weights in ``.safetensors``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rdcompress.cli._common import check_outputs
from rdcompress.codec import decompress_to_safetensors

DESCRIPTION = """\
Decode every tensor of a compressed model (bit-exact: quantized weights become their codebook
values, pruned weights zeros, uncompressed tensors exactly as stored, original dtypes) and write
them as a .safetensors file. The manifest (model spec, method, objective, settings) is kept in
the file's metadata under "rdz_manifest". The whole input is validated first: a truncated,
corrupted, foreign or too-new file is an error and nothing is written.
"""

EPILOG = """\
examples:
  rdcompress decompress model.rdz -o weights.safetensors
  rdcompress decompress model.rdz            # writes model.safetensors beside it
  rdcompress info model.rdz                  # what the file spends its bytes on
"""


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "decompress", help="decode a .rdz file into a .safetensors file",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("rdz", metavar="MODEL.rdz", help="compressed model to decode")
    parser.add_argument("-o", "--output", metavar="OUT.safetensors", default=None,
                        help="where to write the weights (default: MODEL.safetensors)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    output = Path(args.output) if args.output else Path(args.rdz).with_suffix(".safetensors")
    check_outputs({"-o" if args.output else "the default output": output},
                  {"MODEL.rdz": args.rdz})
    manifest = decompress_to_safetensors(args.rdz, output)
    method = manifest.get("method", "?") if isinstance(manifest, dict) else "?"
    print(f"wrote {output} (method: {method})")
    return 0
