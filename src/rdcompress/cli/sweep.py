"""``rdcompress sweep``: the main job — a rate–distortion sweep with tables, plots and a summary."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rdcompress.cli._common import (
    add_trust_argument,
    check_dataset,
    check_output_dir,
    comma_list,
    positive_int,
    print_table,
    temperature,
)
from rdcompress.cli._methods import add_sweep_flags, sweep_grid_and_options
from rdcompress.codec import CODERS
from rdcompress.compress.registry import default_sweep, specs
from rdcompress.errors import ConfigError
from rdcompress.sweep import GREEDY_OBJECTIVE, OBJECTIVES, PAPER_OBJECTIVES, SweepConfig

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
    """The grid: methods x objectives x each method's values (flags from the registry)."""
    sweepable = [spec.name for spec in specs() if spec.sweep is not None]
    by_loss = [spec.name for spec in specs() if spec.sweep is not None
               and not spec.uses_importance]
    parser.add_argument("--methods", type=comma_list(str, sweepable), default=default_sweep(),
                        help=f"comma-separated: {', '.join(sweepable)} (default "
                             f"{_listed(default_sweep())}); with several methods the sweep also "
                             "writes frontier.png/.csv, the methods at equal file size; "
                             f"{', '.join(by_loss)} score weights by the calibration loss, so "
                             "they run once per setting under the objective name "
                             f"'{GREEDY_OBJECTIVE}'")
    parser.add_argument("--objectives", type=comma_list(str, OBJECTIVES),
                        default=PAPER_OBJECTIVES,
                        help=f"comma-separated: {', '.join(OBJECTIVES)} (default: the "
                             f"paper's five, {_listed(PAPER_OBJECTIVES)})")
    add_sweep_flags(parser, comma_list)
    parser.add_argument("--set", dest="settings", action="append", default=[],
                        metavar="METHOD.FIELD=VALUE",
                        help="any other setting of one method's config, for all its runs "
                             "(repeatable), e.g. --set quantize.algorithm=optimal or --set "
                             "prune.scope=global; values are read as JSON when they parse")


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    config = SweepConfig
    parser.add_argument("--coder", default=config.coder, choices=CODERS,
                        help="entropy coder of the .rdz files (default: each method's own: ctx "
                             "for allocate, ans for the others)")
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
    parser.add_argument("--html", action="store_true",
                        help="also write report.html into the output directory: the runs in a "
                             "browser (rdcompress report; self-contained, no network)")
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
    grid, options = sweep_grid_and_options(args, args.methods)
    for method, values in parse_settings(args.settings).items():
        options[method] = {**options.get(method, {}), **values}
    return SweepConfig(
        model=args.model, weights=args.weights, data=args.data, data_dir=args.data_dir,
        output_dir=output_dir, methods=args.methods, objectives=args.objectives, grid=grid,
        options=options, coder=args.coder, calibration_samples=args.calibration_samples,
        temperature=args.temperature, hessian_mu=args.mu, eval_limit=args.eval_limit,
        train_epochs=args.epochs, seed=args.seed, trust_code=args.trust_code,
    )


def parse_settings(items: list[str]) -> dict[str, dict[str, Any]]:
    """["quantize.algorithm=optimal", ...] -> {"quantize": {"algorithm": "optimal"}}."""
    settings: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        method, dot, name = key.strip().rpartition(".")
        if not (sep and dot and method and name):
            raise ConfigError(f"--set {item!r}: expected METHOD.FIELD=VALUE, e.g. "
                              "quantize.algorithm=optimal")
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            value = text
        settings.setdefault(method, {})[name] = value
    return settings


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
    if args.html:
        from rdcompress.report import ReportConfig, build_report

        report = build_report(ReportConfig([str(result.output_dir)],
                                           output=str(result.output_dir / "report.html")))
        print(f"wrote {report.path}")
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
