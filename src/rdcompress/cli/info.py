"""``rdcompress info``: what a ``.rdz`` file spends its bytes on, per layer and in total."""

from __future__ import annotations

import argparse
import json

from rdcompress.codec import inspect_rdz, read_rdz_tensors

DESCRIPTION = """\
Print a per-layer table of a compressed model: name, shape, kind (quantized / pruned / raw),
codebook size k, kept %, bits per weight, bytes, the empirical entropy bound of the layer in
bytes, overhead (bytes / bound), the index coder and the method that codes pruned positions.
Totals follow: header bytes, file bytes, bits per weight, and the compression ratio
(original fp32 state_dict bytes / file bytes, everything counted) beside the paper's formula
(Huffman bits + 32 bits per centroid, pruned positions free), which is always more flattering.
The file is fully validated and decoded to measure its streams.
"""

EPILOG = """\
examples:
  rdcompress info model.rdz
  rdcompress info model.rdz --json > model-info.json
  rdcompress info model.rdz --manifest        # also print the stored manifest
format: docs/rdz-format.md
"""


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "info", help="per-layer table of a .rdz file: bits/weight, bytes, entropy, ratios",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("rdz", metavar="MODEL.rdz", help="compressed model to describe")
    parser.add_argument("--json", action="store_true",
                        help="print machine-readable JSON (summary + manifest) instead")
    parser.add_argument("--manifest", action="store_true",
                        help="also print the manifest stored in the file")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    summary = inspect_rdz(args.rdz)
    if args.json or args.manifest:
        manifest, _ = read_rdz_tensors(args.rdz)
    if args.json:
        print(json.dumps({"summary": summary.to_dict(), "manifest": manifest}, indent=2))
        return 0
    print(summary.format_table())
    if args.manifest:
        print(json.dumps(manifest, indent=2))
    return 0
