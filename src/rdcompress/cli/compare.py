"""``rdcompress compare``: several finished sweeps at equal file size, on one frontier."""

from __future__ import annotations

import argparse
from pathlib import Path

from rdcompress.cli._common import check_output_dir, comma_list, print_table
from rdcompress.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare", help="compare finished sweeps at equal file size (one frontier plot)",
        description="Merge the results of finished 'rdcompress sweep' runs on the same model "
        "and evaluation samples, and write each method's best accuracy / KL at each file size: "
        "frontier.png, frontier.csv, compare.md and the merged rows in compare.json. A method "
        "present in several sweeps is shown once per sweep, as LABEL/method. Sweeps of "
        "different models or evaluation sets are refused unless --allow-different.",
        epilog="example:\n  rdcompress compare runs/frontier-mnist runs/greedy-mnist "
        "-o runs/compare-mnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweeps", nargs="+", metavar="SWEEP_DIR",
                        help="output directories of 'rdcompress sweep' (two or more)")
    parser.add_argument("-o", "--output-dir", required=True, help="where to write the outputs")
    parser.add_argument("--labels", type=comma_list(str),
                        help="one name per sweep, comma-separated (default: directory names)")
    parser.add_argument("--allow-different", action="store_true",
                        help="compare sweeps of different models or evaluation samples anyway")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdcompress.compare import compare_sweeps
    from rdcompress.frontier import frontiers

    check_output_dir("-o", args.output_dir)
    for sweep in args.sweeps:
        if Path(sweep).resolve() == Path(args.output_dir).resolve():
            raise ConfigError(f"-o {args.output_dir!r} is the sweep directory {sweep!r}; its "
                              "frontier.png/.csv would be overwritten. Choose another -o.")
    result = compare_sweeps(args.sweeps, args.output_dir, labels=args.labels,
                            allow_different=args.allow_different)
    front = [row for rows in frontiers(result.rows).values() for row in rows]
    print_table(front, ["method", "objective", "setting", "file_ratio", "accuracy", "kl"])
    print(f"wrote {result.output_dir}/compare.md, frontier.png, frontier.csv, compare.json")
    return 0
