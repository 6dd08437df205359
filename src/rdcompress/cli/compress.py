"""``rdcompress compress``: prune, quantize, factorize or greedily compress a model into a .rdz
file."""

from __future__ import annotations

import argparse
from typing import Any

from rdcompress.cli._common import (
    add_data_arguments,
    add_model_arguments,
    check_outputs,
    model_files,
    write_json,
)
from rdcompress.cli._methods import (
    add_method_flags,
    choose_method,
    config_from_flags,
    given_flags,
)
from rdcompress.codec.streams import CODERS
from rdcompress.compress.registry import names
from rdcompress.errors import ConfigError
from rdcompress.importance.config import OBJECTIVES
from rdcompress.units import parse_size  # noqa: F401 - the --target-size type, importable here

LOWRANK_EXAMPLES = """\
  rdcompress compress MODEL --method lowrank --rank 32 -o m.rdz
  rdcompress compress MODEL --method lowrank --keep 0.2 --allocation global \\
      --lowrank-metric fwsvd --objective fisher -o m.rdz
  rdcompress compress MODEL --method lowrank+quantize --keep 0.2 --bits 5 -o m.rdz
  rdcompress compress MODEL --method lowrank --lowrank-metric whiten --rank 8 --data mnist \\
      -o m.rdz                  # whitening: input second moments collected on --data

The flags of each method are listed above under its name; a flag of another method is refused.
Old spellings that still work: --ratio (--keep), --metric (--lowrank-metric), --factor-storage
(--lowrank-storage), --greedy-alpha (--alpha).
"""
OBJECTIVE_CHOICES = tuple(OBJECTIVES)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compress",
        help="compress a model into a .rdz file: by a method, or to a target size or distortion",
        description="Compress MODEL by the rate-distortion objective Σ I (w − ŵ)² (+ H (w − ŵ)⁴): "
        "prune the weights of smallest score I·w² (paper §5.3, §6), quantize each layer to k "
        "importance-weighted centroids (weighted k-means, quartic k-means, the exact DP "
        "optimum, or entropy-constrained), or both; factorize W ≈ A·B (low rank, ranks chosen by "
        "the objective); or compress by randomized greedy pruning / stochastic rounding scored "
        "on the loss of --data (greedy-*); or, given a target (--target-size, --target-ratio, "
        "--max-kl, --max-accuracy-drop), put every parameter on its own uniform grid, the grids "
        "chosen at one rate-distortion slope so that the file meets the target (allocate). The "
        "importance I comes from --importance "
        "(see 'rdcompress importance') or is computed on --data for --objective. Prints a "
        "per-layer table and the file's compression ratio.",
        epilog="examples:\n"
        "  rdcompress compress runs/digits.safetensors --method quantize --clusters 16 "
        "-o q16.rdz\n"
        "  rdcompress compress runs/digits.safetensors --method prune --keep 0.1 "
        "--objective fisher --data digits -o p10.rdz\n"
        "  rdcompress compress runs/mnist.safetensors --method prune+quantize --keep 0.2 "
        "--bits 4 --importance imp.safetensors --algorithm optimal -o pq.rdz\n"
        "  rdcompress compress runs/mnist.safetensors --method greedy-prune -p 0.3 --alpha 0.9 "
        "--data mnist --limit 512 -o g.rdz\n"
        "  rdcompress compress runs/mnist.safetensors --target-ratio 30 --importance imp."
        "safetensors -o a30.rdz        # --method allocate is implied by a target\n"
        "  rdcompress compress runs/mnist.safetensors --max-kl 0.01 --data mnist --limit 4096 "
        "--quantizer gptq -o kl.rdz\n" + LOWRANK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--method", choices=names(),
                        help="what to do (required unless a target below implies allocate)")
    parser.add_argument("--objective", choices=OBJECTIVE_CHOICES,
                        help="importance objective (default: the --importance file's, else "
                        "baseline)")
    parser.add_argument("--importance", help="importance file (.safetensors) of this model")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="softmax temperature when computing importance (default: 1)")
    add_data_arguments(parser, split="train")
    add_method_flags(parser)
    parser.add_argument("--report", help="also write the per-layer allocation as JSON here")
    recovery = parser.add_argument_group(
        "recovery (any method): fine-tune inside the compressed structure on --data, then "
        "re-code the file (see 'rdcompress recover')")
    recovery.add_argument("--recover-epochs", type=int, metavar="N",
                          help="epochs of fine-tuning after compressing (0: BatchNorm "
                               "re-estimation only)")
    recovery.add_argument("--recover-loss", choices=("distill", "task", "mix"),
                          help="distill (KL to the original, no labels; default), task or mix")
    recovery.add_argument("--recover-lr", type=float, metavar="LR",
                          help="learning rate of the codebooks and kept values (default 1e-4)")
    parser.add_argument("--coder", choices=CODERS,
                        help="entropy coder of the file: ans (order-0 rANS), huffman, or ctx "
                        "(context-modelled rANS; .rdz format version 3); default: ctx for "
                        "allocation (targets), ans for the other methods")
    parser.add_argument("-o", "--output", required=True, help="the .rdz file to write")
    parser.add_argument("--json", dest="json_out", help="also write the summary as JSON here")
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace) -> Any:
    """The method config the flags describe (ConfigError before any work); sets args.method."""
    given = given_flags(args)
    spec = choose_method(args.method, given)
    args.method = spec.name
    config = config_from_flags(spec, given)
    stage = {key: value for key, value in (("epochs", args.recover_epochs),
                                           ("loss", args.recover_loss), ("lr", args.recover_lr))
             if value is not None}
    if not stage:
        return config
    if "epochs" not in stage:
        raise ConfigError("--recover-loss/--recover-lr need --recover-epochs N")
    from rdcompress.compress.recovered import RecoveredConfig
    from rdcompress.recover import RecoverConfig

    return RecoveredConfig(base=config, recover=RecoverConfig(**stage))


def _importance(args: argparse.Namespace, loaded):
    if args.importance:
        from rdcompress.importance import Importance

        importance = Importance.load(args.importance, loaded.module)
        if args.objective and args.objective != importance.objective:
            raise ConfigError(f"--objective {args.objective} but {args.importance!r} holds "
                              f"{importance.objective!r} importance; drop one of them")
        return importance
    objective = args.objective or "baseline"
    if objective == "baseline":
        return None
    dataset = args.data or loaded.dataset
    if dataset is None:
        raise ConfigError(f"--objective {objective} needs data: pass --data NAME or "
                          "--importance FILE")
    from rdcompress.importance import compute_importance

    return compute_importance(loaded.module, _loader(args, loaded, f"--objective {objective}"),
                              objective, temperature=args.temperature)


def _loader(args: argparse.Namespace, loaded, why: str):
    """The --data loader (split, limit, batch size) with the model's preprocessing."""
    dataset = args.data or loaded.dataset
    if dataset is None:
        raise ConfigError(f"{why} needs data: pass --data NAME")
    from rdcompress.data import load_dataset
    from rdcompress.pipeline import check_model_fits_data, make_loader

    data = load_dataset(dataset, split=args.split, data_dir=args.data_dir)
    loader = make_loader(data, loaded.preprocessing, args.batch_size, limit=args.limit)
    check_model_fits_data(loaded.module, loader, args.model, dataset)
    return loader


def run(args: argparse.Namespace) -> int:
    from rdcompress.api import open_model
    from rdcompress.compress import compress, spec_of

    config = build_config(args)
    check_outputs({"-o": args.output, "--json": args.json_out, "--report": args.report},
                  {**model_files(args.model, args.weights), "--importance": args.importance})
    loaded = open_model(args.model, weights=args.weights, arch=args.arch,
                        trust_code=args.trust_code)
    metadata = {"dataset": loaded.dataset,
                "preprocessing": loaded.preprocessing.to_dict() if loaded.preprocessing else None}
    spec = spec_of(config)
    importance = _importance(args, loaded) if spec.uses_importance else None
    calibration = None
    if spec.needs_of(config) & {"calibration", "input_moments"}:
        calibration = _loader(args, loaded, f"--method {args.method}"
                              + (" with --recover-epochs" if args.recover_epochs is not None
                                 else ""))
    compressed = compress(loaded.module, config, importance, model_spec=loaded.spec,
                          coder=args.coder, model_metadata=metadata, calibration=calibration)
    summary = compressed.save(args.output)
    rows = _rows(compressed, summary)
    _print(rows, summary, args.output)
    if compressed.report is not None:
        _print_allocation(compressed.report)
        if args.report:
            write_json(args.report, compressed.report)
    if args.json_out:
        write_json(args.json_out, {"manifest": compressed.manifest, "summary": summary.to_dict(),
                                   "report": compressed.report})
    return 0


def _print_allocation(report: dict) -> None:
    rows = [{
        "layer": r["layer"], "choice": r["choice"],
        "step": "-" if r["step"] is None else f"{r['step']:.3g}",
        "levels": r["levels"] or "-", "bytes": r["bytes"],
        "bits/w": f"{r['bits_per_weight']:.3f}",
        "pred.dist": f"{r['predicted_distortion']:.3g}",
        "share": f"{100 * r['distortion_share']:.1f}%",
    } for r in report["layers"]]
    print(f"\nallocation at slope {report['slope']:.4g} (distortion per byte; the same for every "
          f"layer) over {report['candidates']} candidates:")
    _table(rows)
    line = f"predicted distortion {report['predicted_distortion']:.4g}"
    if report.get("predicted_kl") is not None:
        line += f" (KL ≈ {report['predicted_kl']:.4g} nats)"
    measured = report.get("measured")
    if measured:
        line += (f"; measured on --data: KL {measured['measured_kl']:.4g} nats, accuracy "
                 f"{100 * measured['accuracy']:.2f}% (original "
                 f"{100 * measured['original_accuracy']:.2f}%)")
    print(line)


def _rows(compressed, summary) -> list[dict]:
    rows = []
    for name, stats in compressed.layers.items():
        bits = 8.0 * summary.layer_bytes(name) / stats.numel  # parts summed for composites
        rows.append({
            "layer": name, "shape": "x".join(map(str, stats.shape)), "weights": stats.numel,
            "kept%": f"{100 * stats.kept_fraction:.1f}", "k": stats.clusters or "-",
            "rank": getattr(stats, "rank", None) or "-",
            "bits/w": f"{bits:.3f}", "distortion": f"{stats.distortion:.4g}",
            "rel.dist": f"{stats.relative_distortion:.4f}",
        })
    return rows


def _table(rows: list[dict]) -> None:
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))


def _print(rows: list[dict], summary, output: str) -> None:
    _table(rows)
    compressed_weights = sum(r["weights"] for r in rows)
    print(
        f"\nwrote {output}: {summary.file_bytes} bytes for {summary.numel} numbers "
        f"({compressed_weights} compressed); {summary.bits_per_weight:.3f} bits/number overall\n"
        f"file ratio (fp32 state_dict {summary.original_bytes} B / file): {summary.ratio:.2f}x   "
        f"paper formula: {summary.paper_ratio:.2f}x"
    )
