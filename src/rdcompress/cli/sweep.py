"""``rdcompress sweep``: the main job — a rate–distortion sweep with tables, plots and a summary."""

from __future__ import annotations

import argparse

from rdcompress.cli._common import (
    add_alias,
    add_trust_argument,
    check_dataset,
    check_output_dir,
    comma_list,
    positive_int,
    print_table,
    temperature,
)
from rdcompress.compress.api import CODERS
from rdcompress.compress.lowrank import STORAGES
from rdcompress.compress.quantize import ALGORITHMS
from rdcompress.sweep import GREEDY_OBJECTIVE, LOWRANK_METRICS, METHODS, OBJECTIVES, SweepConfig

_floats, _ints = comma_list(float), comma_list(int)

EPILOG = """\
examples:
  rdcompress sweep                  # digits, a few minutes
  rdcompress sweep --model mnist-mlp --data-dir ../shared/data
  rdcompress sweep --model resnet20 --weights ../shared/data/checkpoints/resnet20-12fca82f.th \\
      --data cifar10-jpeg --data-dir ../shared/data
  rdcompress sweep --methods prune,quantize,prune+quantize,lowrank+quantize \\
      --lowrank-metric whiten --objectives baseline,fisher   # equal file size
  rdcompress sweep --methods prune --objectives baseline,gradient,hessian \\
      --keep 0.05,0.075,0.1 --vary temperature=1,2,3,4,5,6,7,8,9   # App. C.3.1

old spellings that still work: --kept (--keep), --ranks (--lowrank-keep), --greedy-p
(--keep-prob), --greedy-k (--grid-k), --greedy-alpha (--alpha).
"""


def _listed(values: tuple) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="rate–distortion sweep: the main job (default: digits, no download)",
        description="Compress one model with every (method, objective, setting) in a grid, "
        "write each as a real .rdz file, evaluate it against the original on held-out data, "
        "and write results.csv/json, plots (accuracy and cross-entropy vs ratio per objective; "
        "KL vs bits per weight) and summary.md to the output directory. Interrupted sweeps "
        "resume; trained models and importance estimates are cached there. Every setting is "
        "checked before any work starts.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_source_arguments(parser)
    _add_grid_arguments(parser)
    _add_run_arguments(parser)
    parser.set_defaults(func=run)


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=SweepConfig.model,
                        help="zoo name (trained first unless --weights), or a trained "
                        f".safetensors with sidecar (default: {SweepConfig.model})")
    parser.add_argument("--weights", help="weights for a zoo --model (skips training)")
    add_trust_argument(parser)
    parser.add_argument("--data", help="dataset (default: the model's)")
    parser.add_argument("--data-dir", help="where dataset files are")
    parser.add_argument("-o", "--output-dir", help="default: runs/sweep-MODEL")


def _add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """The grid: methods x objectives x each method's settings."""
    config = SweepConfig
    parser.add_argument("--methods", type=comma_list(str, METHODS), default=config.methods,
                        help=f"comma-separated: {', '.join(METHODS)} (default "
                             f"{_listed(config.methods)}); with several methods the sweep also "
                             "writes frontier.png/.csv, the methods at equal file size; the "
                             "greedy methods score weights by the calibration loss, so they run "
                             f"once per setting under the objective name '{GREEDY_OBJECTIVE}'")
    parser.add_argument("--objectives", type=comma_list(str, OBJECTIVES),
                        default=config.objectives,
                        help=f"comma-separated: {', '.join(OBJECTIVES)} (default: all five)")
    keep = parser.add_argument("--keep", type=_floats, default=config.kept_fractions,
                               help="pruning: kept fractions per layer (default "
                                    f"{_listed(config.kept_fractions)})")
    add_alias(parser, keep, "--kept")
    parser.add_argument("--clusters", type=_ints, default=config.clusters,
                        help="quantization: centroids per layer (default "
                             f"{_listed(config.clusters)})")
    ranks = parser.add_argument("--lowrank-keep", type=_floats, default=config.ranks,
                                help="low rank: fraction of the layers' numbers kept, ranks "
                                     "allocated globally by each objective (default "
                                     f"{_listed(config.ranks)})")
    add_alias(parser, ranks, "--ranks")
    parser.add_argument("--lowrank-metric", default=config.lowrank_metric,
                        choices=LOWRANK_METRICS,
                        help="low rank projection for non-baseline objectives: element-wise "
                             "weighted by I (default), FWSVD rows, plain SVD, or whitened by the "
                             "calibration inputs' second moments; the baseline is plain SVD")
    parser.add_argument("--lowrank-storage", default=config.lowrank_storage, choices=STORAGES,
                        help="how factors are stored (quantized: 4-bit codebooks + ANS; "
                             f"default {config.lowrank_storage})")
    parser.add_argument("--combine-clusters", type=int, default=config.combine_clusters,
                        help="k of the quantizer in prune+quantize (the kept weights, settings "
                             "from --keep) and lowrank+quantize (each factor, settings from "
                             f"--lowrank-keep) (default {config.combine_clusters})")
    prob = parser.add_argument("-p", "--keep-prob", type=_floats, default=config.greedy_p,
                               help="greedy pruning: keep probabilities p (default "
                                    f"{_listed(config.greedy_p)})")
    add_alias(parser, prob, "--greedy-p")
    grid_k = parser.add_argument("--grid-k", type=_ints, default=config.greedy_k,
                                 help="greedy quantization: grid spacing M/k (default "
                                      f"{_listed(config.greedy_k)})")
    add_alias(parser, grid_k, "--greedy-k")
    alpha = parser.add_argument("--alpha", type=float, default=config.greedy_alpha,
                                help="greedy: fraction of each layer replaced (default "
                                     f"{config.greedy_alpha:g})")
    add_alias(parser, alpha, "--greedy-alpha")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    config = SweepConfig
    parser.add_argument("--algorithm", default=config.algorithm, choices=ALGORITHMS,
                        help="quantizer: lloyd (the paper's; quartic for gradient+hessian), "
                             f"quartic, optimal or entropy (default {config.algorithm})")
    parser.add_argument("--coder", default=config.coder, choices=CODERS,
                        help=f"entropy coder of the .rdz files (default {config.coder})")
    parser.add_argument("--calibration-samples", type=positive_int,
                        default=config.calibration_samples,
                        help="training samples for importance estimates (default "
                             f"{config.calibration_samples})")
    parser.add_argument("--temperature", type=temperature, default=config.temperature,
                        help="importance temperature T > 0, or 'auto' (fit on the val split) "
                             f"(default {config.temperature:g})")
    parser.add_argument("--mu", type=float, default=config.hessian_mu,
                        help=f"Hessian regularizer μ >= 0 (App. C.3.2), default "
                             f"{config.hessian_mu:g}")
    parser.add_argument("--eval-limit", type=positive_int,
                        help="evaluate on N test samples spread evenly over the split")
    parser.add_argument("--epochs", type=positive_int,
                        help="training epochs if the model is trained")
    parser.add_argument("--seed", type=int, default=config.seed)
    parser.add_argument("--vary", metavar="NAME=V1,V2,...",
                        help="one sweep per value of the importance temperature or the Hessian "
                             "regularizer (App. C.3): temperature=1,2,...,9 or mu=0,1e-4,1e-3; "
                             "writes vary-NAME.csv/json/png/md beside the sub-sweeps")


def sweep_config(args: argparse.Namespace) -> SweepConfig:
    """The SweepConfig the flags describe; it checks every setting, so this fails (ConfigError)
    before any work."""
    stem = args.model.rsplit("/", 1)[-1].removesuffix(".safetensors")
    output_dir = args.output_dir or f"runs/sweep-{stem}"
    check_dataset(args.data)
    check_output_dir("-o", output_dir)
    return SweepConfig(
        model=args.model, weights=args.weights, data=args.data, data_dir=args.data_dir,
        output_dir=output_dir, methods=args.methods,
        objectives=args.objectives, kept_fractions=args.keep, clusters=args.clusters,
        ranks=args.lowrank_keep, lowrank_metric=args.lowrank_metric,
        lowrank_storage=args.lowrank_storage, greedy_p=args.keep_prob, greedy_k=args.grid_k,
        greedy_alpha=args.alpha, combine_clusters=args.combine_clusters,
        algorithm=args.algorithm, coder=args.coder,
        calibration_samples=args.calibration_samples, temperature=args.temperature,
        hessian_mu=args.mu, eval_limit=args.eval_limit, train_epochs=args.epochs,
        seed=args.seed, trust_code=args.trust_code,
    )


def run(args: argparse.Namespace) -> int:
    from rdcompress.sweep import run_sweep

    config = sweep_config(args)
    if args.vary:
        return _run_vary(config, args.vary)
    result = run_sweep(config)
    print(f"original: accuracy {result.reference['accuracy']:.4f}, cross-entropy "
          f"{result.reference['cross_entropy']:.4f}")
    print_table(result.rows, ["method", "objective", "setting", "file_ratio", "bits_per_weight",
                              "accuracy", "cross_entropy", "kl"])
    print(f"wrote {result.output_dir}/results.csv, results.json, summary.md and plots "
          f"({result.seconds:.1f} s)")
    return 0


def _run_vary(config: SweepConfig, text: str) -> int:
    from rdcompress.vary import best_values, parse_vary, run_vary

    parameter, values = parse_vary(text)  # ConfigError before any work
    result = run_vary(config, parameter, values)
    best = best_values(result.rows, "accuracy")
    print_table([{"method": k[0], "objective": k[1], "setting": k[2], parameter: r["varied"],
                  "accuracy": r["accuracy"], "cross_entropy": r["cross_entropy"]}
                 for k, r in sorted(best.items())],
                ["method", "objective", "setting", parameter, "accuracy", "cross_entropy"])
    print(f"wrote {result.output_dir}/vary-{parameter}.csv, .json, .png, .md and one sub-sweep "
          f"per value ({result.seconds:.1f} s)")
    return 0
