"""Flags of ``rdcompress compress --method lowrank`` (wired into cli/compress.py by the lead).

Shared with the other methods when the parser already has them: ``--keep`` (fraction of the
dense layers' numbers kept; old spelling ``--ratio``), ``--clusters`` / ``--bits`` and
``--algorithm`` (the factors' quantizer with ``--lowrank-storage quantized``).
``add_lowrank_arguments`` adds whichever of those is missing, so the group also works on its own.
Names as in ``rdcompress sweep``: ``--lowrank-metric`` (old ``--metric``) and
``--lowrank-storage`` (old ``--factor-storage``); the old spellings stay as hidden aliases.
"""

from __future__ import annotations

import argparse

from rdcompress.cli._common import add_alias
from rdcompress.compress.lowrank import ALLOCATIONS, METRICS, STORAGES, LowRankConfig

EPILOG = """low rank (--method lowrank):
  rdcompress compress MODEL --method lowrank --rank 32 -o m.rdz
  rdcompress compress MODEL --method lowrank --keep 0.2 --allocation global \\
      --lowrank-metric fwsvd --objective fisher -o m.rdz
  rdcompress compress MODEL --method lowrank --keep 0.2 --lowrank-storage quantized --bits 5 \\
      -o m.rdz
--lowrank-metric whiten needs input second moments from calibration data (collected by hooks).
Old spellings that still work: --ratio (--keep), --metric (--lowrank-metric), --factor-storage
(--lowrank-storage)."""


def add_lowrank_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("low rank (W ≈ A·B per Linear/Conv2d layer)")
    group.add_argument("--rank", type=int,
                       help="one rank for every layer (or give --keep)")
    metric = group.add_argument(
        "--lowrank-metric", dest="metric", choices=METRICS, default="svd",
        help="projection: svd (identity), fwsvd (row Fisher), weighted (element-wise I, "
             "iterative), whiten (input moments); default svd")
    add_alias(group, metric, "--metric")
    group.add_argument("--allocation", choices=ALLOCATIONS, default="uniform",
                       help="with --keep: every layer keeps the fraction (uniform) or ranks "
                            "chosen by the objective at the global budget (global)")
    storage = group.add_argument(
        "--lowrank-storage", dest="factor_storage", choices=STORAGES, default="float32",
        help="how the factors are stored; quantized uses --clusters/--bits")
    add_alias(group, storage, "--factor-storage")
    group.add_argument("--lowrank-iters", type=int, default=10,
                       help="alternating least-squares sweeps of --lowrank-metric weighted "
                            "(default 10)")
    group.add_argument("--whiten-eps", type=float, default=1e-6,
                       help="damping of E[x xᵀ] for --lowrank-metric whiten, relative "
                            "(default 1e-6)")
    known = parser._option_string_actions  # the shared flags may already exist
    if "--keep" not in known and "--ratio" in known:  # a parser that still names it --ratio:
        add_alias(group, known["--ratio"], "--keep")  # --keep would abbreviate --keep-prob
    elif "--keep" not in known:
        keep = group.add_argument("--keep", type=float,
                                  help="fraction of the dense layers' numbers kept, in (0, 1]")
        add_alias(group, keep, "--ratio")
    if "--clusters" not in known and "--bits" not in known:
        group.add_argument("--clusters", type=int, help="k centroids per factor")
        group.add_argument("--bits", type=int, help="k = 2**bits centroids per factor")
    if "--algorithm" not in known:
        group.add_argument("--algorithm", choices=("lloyd", "quartic", "optimal"),
                           default="lloyd", help="quantizer of the factors")


def lowrank_config_from_args(args: argparse.Namespace) -> LowRankConfig:
    """The LowRankConfig the flags describe (ConfigError for bad combinations)."""
    quantized = args.factor_storage == "quantized"
    given = vars(args)  # the kept fraction: dest "keep" (--keep), or "ratio" where a parser
    #   still defines --ratio itself
    kept = given["keep"] if "keep" in given else given.get("ratio")
    return LowRankConfig(
        metric=args.metric, rank=args.rank, ratio=kept,
        allocation=args.allocation, storage=args.factor_storage,
        clusters=getattr(args, "clusters", None) if quantized else None,
        bits=getattr(args, "bits", None) if quantized else None,
        algorithm=getattr(args, "algorithm", None) or "lloyd",
        iters=args.lowrank_iters, eps=args.whiten_eps,
    )
