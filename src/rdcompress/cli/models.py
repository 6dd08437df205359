"""``rdcompress models``: list the model zoo."""

from __future__ import annotations

import argparse

from rdcompress.cli._common import print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list the model zoo",
        description="List zoo architectures with their dataset, preprocessing and size. Bring "
        "your own model as 'package.module:factory' plus --weights.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdcompress.models import ZOO, build, parameter_count

    rows = []
    for name, entry in ZOO.items():
        prep = entry.preprocessing
        steps = []
        if prep.resize:
            steps.append(f"resize {prep.resize[0]}x{prep.resize[1]}")
        if prep.mean is not None:
            steps.append("normalize")
        rows.append({"name": name, "dataset": entry.dataset,
                     "parameters": parameter_count(build(name)),
                     "preprocessing": ", ".join(steps) or "none",
                     "description": entry.description})
    print_table(rows)
    return 0
