"""``rdcompress datasets``: which datasets are on disk, and what one of them holds."""

from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

from rdcompress.data import DATASETS, SPLITS, load_dataset, locate, search_roots
from rdcompress.data.paths import expected_files, idx_file
from rdcompress.data.registry import DIGITS_TEST_FRACTION, DIGITS_VAL_FRACTION, DatasetInfo
from rdcompress.data.splits import fraction_count

DESCRIPTION = """\
Without NAME: a table of every known dataset, its format, its split sizes and where its files
were found (or which files are missing and where to put them).
With NAME: load that dataset and print the shapes, the class counts and the checksum status of
each file. NAME is a registered name or the path of an image folder ROOT/<split>/<class>/*.jpg
(or of a .tar.gz of one).
"""

EPILOG = """\
data directories are searched in this order: --data-dir, $RDCOMPRESS_DATA_DIR,
~/.cache/rdcompress/datasets (downloads go here), /usr/share/datasets.

examples:
  rdcompress datasets
  rdcompress datasets --data-dir ../shared/data
  rdcompress datasets digits --split all
  rdcompress datasets mnist --data-dir ../shared/data --split test
  rdcompress datasets ./my-images.tar.gz --split train
"""


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "datasets", help="list datasets, or load one and summarise it",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help=f"dataset to load: one of {', '.join(DATASETS)}, or an image folder")
    parser.add_argument("--data-dir", metavar="DIR", default=None,
                        help="look here first for dataset files")
    parser.add_argument("--split", choices=[*SPLITS, "all"], default="test",
                        help="split to load with NAME (default: test; 'all' loads every split)")
    parser.add_argument("--no-download", action="store_true",
                        help="fail instead of downloading missing files")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if args.name is None:
        print(format_table(args.data_dir))
        return 0
    splits = list(SPLITS[:3]) if args.split == "all" else [args.split]
    for split in splits:
        dataset = load_dataset(args.name, split, data_dir=args.data_dir,
                               download=not args.no_download)
        print(describe(dataset))
    return 0


def describe(dataset) -> str:
    """A few lines about one loaded split: shape, classes with counts, checksum status."""
    counts = dataset.class_counts()
    lines = [
        f"{dataset.name} [{dataset.split}]: {len(dataset)} images, images "
        f"{tuple(dataset.images.shape)} uint8 (float view = value / {dataset.scale:g}), "
        f"labels {tuple(dataset.labels.shape)} int64",
        f"  source: {dataset.source}",
        f"  classes ({dataset.num_classes}): "
        + ", ".join(f"{name}={count}" for name, count in zip(dataset.classes, counts, strict=True)),
        "  checksums: " + ("; ".join(f"{f}: {s}" for f, s in dataset.checksums.items())
                           or "none"),
    ]
    return "\n".join(lines)


def format_table(data_dir: str | None) -> str:
    rows = [("NAME", "FORMAT", "TRAIN/VAL/TEST", "LOCATION")]
    for name, info in DATASETS.items():
        location = locate(name, data_dir)
        if location is None:
            target = search_roots(data_dir)[0] / name
            where = f"missing: put {', '.join(expected_files(info))} in {target}/"
            sizes = "-"
        else:
            where, sizes = str(location), split_sizes(info, location)
        rows.append((name, info.format, sizes, where))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        lines.append("  ".join([*cells, row[3]]))
    return "\n".join(lines)


def split_sizes(info: DatasetInfo, location: Path) -> str:
    """train/val/test sizes: from the IDX headers when readable, else the canonical ones."""
    if info.format == "sklearn":
        total = info.split_sizes["all"]
        test = fraction_count(total, DIGITS_TEST_FRACTION)
        val = fraction_count(total, DIGITS_VAL_FRACTION)
        return f"{total - test - val}/{val}/{test}"
    train, test = info.split_sizes["train"], info.split_sizes["test"]
    if info.format == "idx":
        train = _idx_count(idx_file(location, "train-labels-idx1-ubyte")) or train
        test = _idx_count(idx_file(location, "t10k-labels-idx1-ubyte")) or test
    val = info.val_count if info.val_count and info.val_count < train else \
        fraction_count(train, 0.1)
    return f"{train - val}/{val}/{test}"


def _idx_count(path: Path | None) -> int | None:
    """The first dimension announced by an IDX header (None when unreadable)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            opener = gzip.open if handle.read(2) == b"\x1f\x8b" else open
        with opener(path, "rb") as handle:
            header = handle.read(8)
        return struct.unpack(">I", header[4:8])[0] if len(header) == 8 else None
    except (OSError, EOFError, struct.error):
        return None
