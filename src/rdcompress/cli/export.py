"""``rdcompress export``: a ``.rdz`` file to a format other runtimes read (ONNX, safetensors)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rdcompress.cli._common import add_trust_argument, check_outputs, comma_list

DESCRIPTION = """\
Write a compressed model in a format another runtime reads. Targets:
  onnx         an ONNX graph that keeps the compression: quantized weights as 8-bit (or packed
               1/2/4-bit) index initializers + codebook + Gather, pruned weights as kept values + a
               bit mask, low-rank weights as factors; runs under onnxruntime. Needs the
               'export' extra: pip install 'rdcompress[export]'.
  safetensors  the dense decoded weights (as 'rdcompress decompress'), for any tool.
ONNX needs the architecture (the file's zoo model spec, or --trust-code for a factory spec)
and one example's input shape (the zoo model's dataset's, or --input-shape).
"""

EPILOG = """\
examples:
  rdcompress export model.rdz --format onnx -o model.onnx
  rdcompress export model.rdz --format onnx --dense -o dense.onnx   # for comparison
  rdcompress export model.rdz --format onnx --input-shape 3,32,32 -o model.onnx
  rdcompress export model.rdz --format safetensors -o weights.safetensors
"""

SUFFIXES = {"onnx": ".onnx", "safetensors": ".safetensors"}


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export", help="export a .rdz model to ONNX (kept compressed) or safetensors",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("rdz", metavar="MODEL.rdz", help="compressed model to export")
    parser.add_argument("--format", required=True, choices=sorted(SUFFIXES),
                        help="export target")
    parser.add_argument("-o", "--output", metavar="OUT", default=None,
                        help="file to write (default: MODEL with the format's suffix)")
    parser.add_argument("--input-shape", type=comma_list(int), default=None, metavar="C,H,W",
                        help="one example's input shape, without the batch (ONNX; default: "
                             "the zoo model's dataset's)")
    parser.add_argument("--dense", action="store_true",
                        help="ONNX: write the dense graph instead (for size comparisons)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (>= 18; default 18)")
    add_trust_argument(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from rdcompress.deploy.export import ExportOptions, export

    output = Path(args.output) if args.output else \
        Path(args.rdz).with_suffix(SUFFIXES[args.format])
    check_outputs({"-o" if args.output else "the default output": output},
                  {"MODEL.rdz": args.rdz})
    options = ExportOptions(trust_code=args.trust_code, compressed=not args.dense,
                            opset=args.opset,
                            input_shape=tuple(args.input_shape) if args.input_shape else None)
    result = export(args.rdz, args.format, output, options)
    rdz_bytes = Path(args.rdz).stat().st_size
    kept = result.details.get("compressed")
    note = f", {len(kept)} weights kept compressed" if kept is not None else ""
    print(f"wrote {result.path} ({result.format}, {result.bytes:,} bytes; the .rdz is "
          f"{rdz_bytes:,} bytes{note})")
    return 0
