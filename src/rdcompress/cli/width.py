"""``rdcompress width``: paper 3's width experiment (greedy compression of growing MLPs)."""

from __future__ import annotations

import argparse
import time

from rdcompress.cli._common import check_output_dir, comma_list, positive_int, print_table
from rdcompress.errors import ConfigError

EPILOG = """\
examples:
  rdcompress width                                   # widths 16..512, 3 seeds -> docs/results/width
  rdcompress width --widths 16,64,256 --seeds 0 --datasets digits -o runs/width
  rdcompress width --layers all,hidden --threads 1   # also compress the hidden layer alone

Writes width.csv (one row per dataset, width, seed, mode, layer set), width.json (the settings)
and width.png (normalized error, test-loss change and kept fraction against width), drawn from
the CSV. normalized error = sum ||f_compressed(x) - f(x)||^2 / sum ||f(x)||^2 on the test split.
"""


_ints, _words = comma_list(int), comma_list(str)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "width", help="greedy compression of 3-layer MLPs of growing width (paper 3)",
        description="Train MLPs d-W-W-c of each width W on digits (classification) and "
                    "diabetes (regression), compress them by randomized greedy pruning "
                    "(t = w*Bernoulli(p)/p) and quantization (stochastic rounding, spacing "
                    "M/k), store each as a real .rdz, and measure the error against width.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=_ints, default=(16, 32, 64, 128, 256, 512),
                        help="hidden widths, comma list (default 16,32,64,128,256,512)")
    parser.add_argument("--datasets", type=_words, default=("digits", "diabetes"),
                        help="comma list of digits, diabetes (default both)")
    parser.add_argument("--seeds", type=_ints, default=(0, 1, 2), help="default 0,1,2")
    parser.add_argument("--modes", type=_words, default=("prune", "quantize"),
                        help="comma list of prune, quantize (default both)")
    parser.add_argument("--layers", type=_words, default=("all",),
                        help="layer sets: all (every weight matrix), hidden (the WxW one); "
                             "comma list (default all)")
    parser.add_argument("--alpha", type=float, default=0.9, help="fraction replaced (0.9)")
    parser.add_argument("-p", type=float, default=0.3, help="keep probability (0.3)")
    parser.add_argument("-k", type=int, default=4, help="quantization grid spacing M/k (4)")
    parser.add_argument("--block", type=positive_int,
                        help="units replaced per score refresh (default: 20 refreshes per layer)")
    parser.add_argument("--train-steps", type=positive_int, default=1000, help="Adam steps (1000)")
    parser.add_argument("--calibration", type=positive_int, default=512,
                        help="training samples defining the greedy loss (512)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads for the run")
    parser.add_argument("-o", "--output-dir", default="docs/results/width",
                        help="where width.csv/json/png go (default docs/results/width)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdcompress.greedy.width import WidthConfig, run_width, summarize

    if not args.widths or not args.seeds:
        raise ConfigError("--widths and --seeds need at least one value each")
    check_output_dir("-o", args.output_dir)
    config = WidthConfig(
        widths=args.widths, datasets=args.datasets, seeds=args.seeds, modes=args.modes,
        layer_sets=args.layers, alpha=args.alpha, p=args.p, k=args.k, block=args.block,
        train_steps=args.train_steps, calibration_samples=args.calibration,
        output_dir=args.output_dir, threads=args.threads)
    start = time.perf_counter()
    rows = run_width(config)
    print_table(summarize(rows), ["dataset", "mode", "layers", "width", "seeds",
                                  "normalized_error", "loss_change", "kept_fraction",
                                  "accuracy_compressed"])
    print(f"wrote {config.output_dir}/width.csv, width.png in "
          f"{time.perf_counter() - start:.0f} s")
    return 0
