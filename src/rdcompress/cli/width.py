"""``rdcompress width``: paper 3's width experiment (greedy compression of growing MLPs)."""

from __future__ import annotations

import argparse
import time

from rdcompress.cli._common import (
    add_alias,
    check_output_dir,
    comma_list,
    positive_int,
    print_table,
)
from rdcompress.errors import ConfigError
from rdcompress.greedy.config import MODES
from rdcompress.greedy.width import DATASETS, LAYER_SETS, WidthConfig

OUTPUT_DIR = "runs/width"  # not WidthConfig's docs/results/width: nothing into the source tree

EPILOG = """\
examples:
  rdcompress width                                   # widths 16..512, 3 seeds -> runs/width
  rdcompress width --widths 16,64,256 --seeds 0 --datasets digits -o runs/width-small
  rdcompress width --keep-prob 0.1 --grid-k 8      # other p and M/k than 0.3 and 4
  rdcompress width --layers all,hidden --threads 1 -o docs/results/width   # the committed run:
                                                     # also compresses the hidden layer alone

Writes width.csv (one row per dataset, width, seed, mode, layer set), width.json (the settings)
and width.png (normalized error, test-loss change and kept fraction against width), drawn from
the CSV. normalized error = sum ||f_compressed(x) - f(x)||^2 / sum ||f(x)||^2 on the test split.

old spellings that still work: -k (--grid-k), --calibration (--calibration-samples).
"""


_ints = comma_list(int)


def _listed(values: tuple) -> str:
    return ",".join(map(str, values))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "width", help="greedy compression of 3-layer MLPs of growing width (paper 3)",
        description="Train MLPs d-W-W-c of each width W on digits (classification) and "
                    "diabetes (regression), compress them by randomized greedy pruning "
                    "(t = w*Bernoulli(p)/p) and quantization (stochastic rounding, spacing "
                    "M/k), store each as a real .rdz, and measure the error against width.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    config = WidthConfig
    parser.add_argument("--widths", type=_ints, default=config.widths,
                        help=f"hidden widths, comma list (default {_listed(config.widths)})")
    parser.add_argument("--datasets", type=comma_list(str, DATASETS), default=config.datasets,
                        help=f"comma list of {', '.join(DATASETS)} (default both)")
    parser.add_argument("--seeds", type=_ints, default=config.seeds,
                        help=f"default {_listed(config.seeds)}")
    parser.add_argument("--modes", type=comma_list(str, MODES), default=config.modes,
                        help=f"comma list of {', '.join(MODES)} (default both)")
    parser.add_argument("--layers", type=comma_list(str, LAYER_SETS),
                        default=config.layer_sets,
                        help="layer sets: all (every weight matrix), hidden (the WxW one); "
                             f"comma list (default {_listed(config.layer_sets)})")
    parser.add_argument("--alpha", type=float, default=config.alpha,
                        help=f"fraction replaced ({config.alpha:g})")
    parser.add_argument("-p", "--keep-prob", type=float, default=config.p,
                        help=f"keep probability p of a pruned weight ({config.p:g})")
    grid_k = parser.add_argument("--grid-k", type=int, default=config.k,
                                 help=f"quantization grid spacing M/k ({config.k})")
    add_alias(parser, grid_k, "-k")
    parser.add_argument("--block", type=positive_int,
                        help="units replaced per score refresh (default: 20 refreshes per layer)")
    parser.add_argument("--train-steps", type=positive_int, default=config.train_steps,
                        help=f"Adam steps ({config.train_steps})")
    calibration = parser.add_argument(
        "--calibration-samples", type=positive_int, default=config.calibration_samples,
        help=f"training samples defining the greedy loss ({config.calibration_samples})")
    add_alias(parser, calibration, "--calibration")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads for the run")
    parser.add_argument("-o", "--output-dir", default=OUTPUT_DIR,
                        help=f"where width.csv/json/png go (default {OUTPUT_DIR})")
    parser.set_defaults(func=run)


def width_config(args: argparse.Namespace) -> WidthConfig:
    """The WidthConfig the flags describe (ConfigError, before any work, for a bad setting)."""
    if not args.widths or not args.seeds:
        raise ConfigError("--widths and --seeds need at least one value each")
    check_output_dir("-o", args.output_dir)
    return WidthConfig(
        widths=args.widths, datasets=args.datasets, seeds=args.seeds, modes=args.modes,
        layer_sets=args.layers, alpha=args.alpha, p=args.keep_prob, k=args.grid_k,
        block=args.block, train_steps=args.train_steps,
        calibration_samples=args.calibration_samples,
        output_dir=args.output_dir, threads=args.threads)


def run(args: argparse.Namespace) -> int:
    from rdcompress.greedy.width import run_width, summarize

    config = width_config(args)
    start = time.perf_counter()
    rows = run_width(config)
    print_table(summarize(rows), ["dataset", "mode", "layers", "width", "seeds",
                                  "normalized_error", "loss_change", "kept_fraction",
                                  "accuracy_compressed"])
    print(f"wrote {config.output_dir}/width.csv, width.png in "
          f"{time.perf_counter() - start:.0f} s")
    return 0
