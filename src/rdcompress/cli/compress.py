"""``rdcompress compress``: prune, quantize, factorize or greedily compress a model into a .rdz
file."""

from __future__ import annotations

import argparse

from rdcompress.cli._common import (
    add_alias,
    add_data_arguments,
    add_model_arguments,
    check_outputs,
    model_files,
    write_json,
)
from rdcompress.cli._lowrank_args import EPILOG, add_lowrank_arguments, lowrank_config_from_args
from rdcompress.codec.streams import CODERS
from rdcompress.compress.allocate import QUANTIZERS
from rdcompress.compress.context import needs_of
from rdcompress.errors import ConfigError

METHOD_CHOICES = ("prune", "quantize", "prune+quantize", "lowrank", "greedy-prune",
                  "greedy-quantize", "allocate")
TARGET_FLAGS = {"target_size": "--target-size", "target_ratio": "--target-ratio",
                "max_kl": "--max-kl", "max_accuracy_drop": "--max-accuracy-drop"}
OBJECTIVE_CHOICES = ("baseline", "fisher", "fisher-mc", "output", "gradient", "hessian",
                     "gradient+hessian")


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
        "--quantizer gptq -o kl.rdz\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--method", choices=METHOD_CHOICES,
                        help="what to do (required unless a target below implies allocate)")
    parser.add_argument("--objective", choices=OBJECTIVE_CHOICES,
                        help="importance objective (default: the --importance file's, else "
                        "baseline)")
    parser.add_argument("--importance", help="importance file (.safetensors) of this model")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="softmax temperature when computing importance (default: 1)")
    add_data_arguments(parser, split="train")
    prune = parser.add_argument_group("pruning")
    keep = prune.add_argument("--keep", type=float, help="kept fraction of weights, in (0, 1]")
    add_alias(prune, keep, "--ratio")
    prune.add_argument("--scope", choices=("layer", "global"), default="layer",
                       help="same kept fraction per layer (default, the paper's) or one "
                       "global threshold (with --structured: rows ranked by score per weight "
                       "across layers, at least one row kept per layer)")
    prune.add_argument("--structured", action="store_true",
                       help="prune whole output neurons / conv channels")
    quant = parser.add_argument_group("quantization")
    sizes = quant.add_mutually_exclusive_group()
    sizes.add_argument("--clusters", type=int, help="k centroids per layer")
    sizes.add_argument("--bits", type=int, help="k = 2**bits centroids per layer")
    quant.add_argument("--algorithm", choices=("lloyd", "quartic", "optimal", "entropy"),
                       default="lloyd", help="quantizer (default: lloyd, the paper's)")
    quant.add_argument("--lam", type=float, default=0.0,
                       help="rate weight for --algorithm entropy (objective units per bit)")
    add_lowrank_arguments(parser)
    greedy = parser.add_argument_group(
        "randomized greedy (--method greedy-prune | greedy-quantize; scored on --data's loss)")
    greedy.add_argument("-p", "--keep-prob", type=float, default=0.3,
                        help="greedy-prune: t = w·Bernoulli(p)/p (default 0.3)")
    greedy.add_argument("--grid-k", type=int, default=4,
                        help="greedy-quantize: stochastic rounding to spacing M/k (default 4)")
    greedy.add_argument("--alpha", type=float, default=0.9,
                        help="fraction of each layer replaced (default 0.9)")
    greedy.add_argument("--greedy-score", choices=("second-order", "exact"),
                        default="second-order",
                        help="exact: forward passes per weight (small models only)")
    _add_allocation_arguments(parser)
    parser.add_argument("--coder", choices=CODERS, default="ans",
                        help="entropy coder of the file: ans (order-0 rANS, default), huffman, "
                        "or ctx (context-modelled rANS; .rdz format version 3)")
    parser.add_argument("-o", "--output", required=True, help="the .rdz file to write")
    parser.add_argument("--json", dest="json_out", help="also write the summary as JSON here")
    parser.set_defaults(func=run)


def _add_allocation_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "allocation to a target (--method allocate; one target): every layer, biases included, "
        "on its own uniform grid, the grids chosen at one rate-distortion slope")
    targets = group.add_mutually_exclusive_group()
    targets.add_argument("--target-size", type=parse_size, metavar="SIZE",
                         help="largest file, e.g. 150KB, 1.5MB or 120000 (bytes; KB = 1000)")
    targets.add_argument("--target-ratio", type=float, metavar="R",
                         help="file at least R times smaller than the fp32 state_dict")
    targets.add_argument("--max-kl", type=float, metavar="NATS",
                         help="smallest file whose measured E_x KL(compressed || original) on "
                         "--data is at most NATS")
    targets.add_argument("--max-accuracy-drop", type=float, metavar="POINTS",
                         help="smallest file whose top-1 accuracy on --data is at most POINTS "
                         "percentage points below the original's")
    group.add_argument("--quantizer", choices=QUANTIZERS, default="round",
                       help="how each grid is filled: round (nearest level, default), ecsq "
                       "(entropy-constrained), gptq (error compensation through the input "
                       "second moments of --data)")
    group.add_argument("--steps-per-octave", type=int, default=2,
                       help="grid steps tried per factor of 2 (default 2)")
    group.add_argument("--report", help="also write the per-layer allocation as JSON here")


def parse_size(text: str) -> int:
    """'150KB' -> 150000, '1.5MB' -> 1500000, '2KiB' -> 2048, '1200' -> 1200 (bytes)."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10,
             "MIB": 2**20, "GIB": 2**30}
    clean = text.strip().upper().replace(" ", "")
    number = clean.rstrip("KMGIB")
    unit = clean[len(number):]
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; write e.g. 150KB, 1.5MB, 2KiB or 120000") from None
    if not (value >= 1 and value < 2**63):
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1 byte")
    return int(value)


def _allocate_config(args: argparse.Namespace):
    from rdcompress.compress import AllocateConfig

    given = {name: getattr(args, name) for name in TARGET_FLAGS
             if getattr(args, name) is not None}
    if not given:
        raise ConfigError("--method allocate needs a target: --target-size, --target-ratio, "
                          "--max-kl or --max-accuracy-drop")
    name, value = next(iter(given.items()))
    key = "target_bytes" if name == "target_size" else name
    return AllocateConfig(**{key: value}, quantizer=args.quantizer,
                          steps_per_octave=args.steps_per_octave)


def build_config(args: argparse.Namespace):
    from rdcompress.compress import PruneConfig, PruneQuantizeConfig, QuantizeConfig

    targets = [flag for name, flag in TARGET_FLAGS.items() if getattr(args, name) is not None]
    if args.method is None:
        if not targets:
            raise ConfigError("give --method, or a target (--target-size, --target-ratio, "
                              "--max-kl, --max-accuracy-drop) to allocate")
        args.method = "allocate"
    if targets and args.method != "allocate":
        raise ConfigError(f"{targets[0]} is a target for --method allocate, not --method "
                          f"{args.method}; drop one of them")
    if args.method == "allocate":
        return _allocate_config(args)
    if args.method == "lowrank":
        if args.factor_storage != "quantized" and (args.clusters or args.bits):
            raise ConfigError("--clusters/--bits with --method lowrank quantize the factors: "
                              "add --lowrank-storage quantized")
        return lowrank_config_from_args(args)
    if args.method.startswith("greedy"):
        from rdcompress.greedy import GreedyConfig

        return GreedyConfig(mode=args.method.removeprefix("greedy-"), p=args.keep_prob,
                            k=args.grid_k, alpha=args.alpha, score=args.greedy_score,
                            structured=args.structured)
    prunes, quantizes = args.method != "quantize", args.method != "prune"
    if prunes and args.keep is None:
        raise ConfigError(f"--method {args.method} needs --keep (the kept fraction, e.g. 0.1)")
    if prunes and not 0.0 < args.keep <= 1.0:  # also catches nan
        raise ConfigError(f"--keep {args.keep} is outside (0, 1]; it is the kept fraction of "
                          "weights, e.g. --keep 0.1 keeps 10%")
    if not prunes and args.keep is not None:
        raise ConfigError("--keep is for pruning; use --method prune+quantize to combine")
    if quantizes and args.clusters is None and args.bits is None:
        raise ConfigError(f"--method {args.method} needs --clusters K or --bits B")
    if not quantizes and (args.clusters is not None or args.bits is not None):
        raise ConfigError("--clusters/--bits are for quantization; use --method quantize or "
                          "prune+quantize")
    if args.method == "prune":
        return PruneConfig(args.keep, scope=args.scope, structured=args.structured)
    quant = dict(clusters=args.clusters, bits=args.bits, algorithm=args.algorithm, lam=args.lam)
    if args.method == "quantize":
        return QuantizeConfig(**quant)
    return PruneQuantizeConfig(args.keep, scope=args.scope, structured=args.structured, **quant)


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
    from rdcompress.compress import compress
    from rdcompress.models import load_model

    config = build_config(args)
    check_outputs({"-o": args.output, "--json": args.json_out, "--report": args.report},
                  {**model_files(args.model, args.weights), "--importance": args.importance})
    loaded = load_model(args.model, weights=args.weights, arch=args.arch,
                        trust_code=args.trust_code)
    metadata = {"dataset": loaded.dataset,
                "preprocessing": loaded.preprocessing.to_dict() if loaded.preprocessing else None}
    if args.method.startswith("greedy"):
        from rdcompress.greedy import greedy_compress

        loader = _loader(args, loaded, f"--method {args.method}")
        compressed = greedy_compress(loaded.module, loader, config, model_spec=loaded.spec,
                                     coder=args.coder)
        compressed.manifest["model_metadata"] = metadata
    else:
        importance = _importance(args, loaded)
        statistics = None
        if args.method == "lowrank" and args.metric == "whiten":
            from rdcompress.lowrank import collect_input_moments

            moments = collect_input_moments(loaded.module,
                                            _loader(args, loaded, "--metric whiten"))
            statistics = moments.layer_statistics()
        calibration = None
        if "calibration" in needs_of(config):
            calibration = _loader(args, loaded, f"--method {args.method} with "
                                  f"{_what_needs_data(config)}")
        compressed = compress(loaded.module, config, importance, model_spec=loaded.spec,
                              coder=args.coder, model_metadata=metadata,
                              layer_statistics=statistics, calibration=calibration)
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


def _what_needs_data(config) -> str:
    name = config.target[0]
    if config.closed_loop:
        return f"--{name.replace('_', '-')}"
    return f"--quantizer {config.quantizer}"


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
