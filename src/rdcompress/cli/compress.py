"""``rdcompress compress``: prune, quantize, factorize or greedily compress a model into a .rdz
file."""

from __future__ import annotations

import argparse

from rdcompress.cli._common import (
    add_data_arguments,
    add_model_arguments,
    check_outputs,
    model_files,
    write_json,
)
from rdcompress.cli._lowrank_args import EPILOG, add_lowrank_arguments, lowrank_config_from_args
from rdcompress.errors import ConfigError

METHOD_CHOICES = ("prune", "quantize", "prune+quantize", "lowrank", "greedy-prune",
                  "greedy-quantize")
OBJECTIVE_CHOICES = ("baseline", "fisher", "fisher-mc", "output", "gradient", "hessian",
                     "gradient+hessian")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compress", help="prune, quantize or factorize a model into a .rdz file",
        description="Compress MODEL by the rate-distortion objective Σ I (w − ŵ)² (+ H (w − ŵ)⁴): "
        "prune the weights of smallest score I·w² (paper §5.3, §6), quantize each layer to k "
        "importance-weighted centroids (weighted k-means, quartic k-means, the exact DP "
        "optimum, or entropy-constrained), or both; factorize W ≈ A·B (low rank, ranks chosen by "
        "the objective); or compress by randomized greedy pruning / stochastic rounding scored "
        "on the loss of --data (greedy-*). The importance I comes from --importance "
        "(see 'rdcompress importance') or is computed on --data for --objective. Prints a "
        "per-layer table and the file's compression ratio.",
        epilog="examples:\n"
        "  rdcompress compress runs/digits.safetensors --method quantize --clusters 16 "
        "-o q16.rdz\n"
        "  rdcompress compress runs/digits.safetensors --method prune --ratio 0.1 "
        "--objective fisher --data digits -o p10.rdz\n"
        "  rdcompress compress runs/mnist.safetensors --method prune+quantize --ratio 0.2 "
        "--bits 4 --importance imp.safetensors --algorithm optimal -o pq.rdz\n"
        "  rdcompress compress runs/mnist.safetensors --method greedy-prune -p 0.3 --alpha 0.9 "
        "--data mnist --limit 512 -o g.rdz\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--method", required=True, choices=METHOD_CHOICES, help="what to do")
    parser.add_argument("--objective", choices=OBJECTIVE_CHOICES,
                        help="importance objective (default: the --importance file's, else "
                        "baseline)")
    parser.add_argument("--importance", help="importance file (.safetensors) of this model")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="softmax temperature when computing importance (default: 1)")
    add_data_arguments(parser, split="train")
    prune = parser.add_argument_group("pruning")
    prune.add_argument("--ratio", type=float, help="kept fraction of weights, in (0, 1]")
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
    parser.add_argument("--coder", choices=("ans", "huffman"), default="ans",
                        help="entropy coder of the file (default: ans)")
    parser.add_argument("-o", "--output", required=True, help="the .rdz file to write")
    parser.add_argument("--json", dest="json_out", help="also write the summary as JSON here")
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    from rdcompress.compress import PruneConfig, PruneQuantizeConfig, QuantizeConfig

    if args.method == "lowrank":
        if args.factor_storage != "quantized" and (args.clusters or args.bits):
            raise ConfigError("--clusters/--bits with --method lowrank quantize the factors: "
                              "add --factor-storage quantized")
        return lowrank_config_from_args(args)
    if args.method.startswith("greedy"):
        from rdcompress.greedy import GreedyConfig

        return GreedyConfig(mode=args.method.removeprefix("greedy-"), p=args.keep_prob,
                            k=args.grid_k, alpha=args.alpha, score=args.greedy_score,
                            structured=args.structured)
    prunes, quantizes = args.method != "quantize", args.method != "prune"
    if prunes and args.ratio is None:
        raise ConfigError(f"--method {args.method} needs --ratio (the kept fraction, e.g. 0.1)")
    if prunes and not 0.0 < args.ratio <= 1.0:  # also catches nan
        raise ConfigError(f"--ratio {args.ratio} is outside (0, 1]; it is the kept fraction of "
                          "weights, e.g. --ratio 0.1 keeps 10%")
    if not prunes and args.ratio is not None:
        raise ConfigError("--ratio is for pruning; use --method prune+quantize to combine")
    if quantizes and args.clusters is None and args.bits is None:
        raise ConfigError(f"--method {args.method} needs --clusters K or --bits B")
    if not quantizes and (args.clusters is not None or args.bits is not None):
        raise ConfigError("--clusters/--bits are for quantization; use --method quantize or "
                          "prune+quantize")
    if args.method == "prune":
        return PruneConfig(args.ratio, scope=args.scope, structured=args.structured)
    quant = dict(clusters=args.clusters, bits=args.bits, algorithm=args.algorithm, lam=args.lam)
    if args.method == "quantize":
        return QuantizeConfig(**quant)
    return PruneQuantizeConfig(args.ratio, scope=args.scope, structured=args.structured, **quant)


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
    check_outputs({"-o": args.output, "--json": args.json_out},
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
        compressed = compress(loaded.module, config, importance, model_spec=loaded.spec,
                              coder=args.coder, model_metadata=metadata,
                              layer_statistics=statistics)
    summary = compressed.save(args.output)
    rows = _rows(compressed, summary)
    _print(rows, summary, args.output)
    if args.json_out:
        write_json(args.json_out, {"manifest": compressed.manifest, "summary": summary.to_dict()})
    return 0


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


def _print(rows: list[dict], summary, output: str) -> None:
    columns = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(row[c]).ljust(w) for c, w in zip(columns, widths, strict=True)))
    compressed_weights = sum(r["weights"] for r in rows)
    print(
        f"\nwrote {output}: {summary.file_bytes} bytes for {summary.numel} numbers "
        f"({compressed_weights} compressed); {summary.bits_per_weight:.3f} bits/number overall\n"
        f"file ratio (fp32 state_dict {summary.original_bytes} B / file): {summary.ratio:.2f}x   "
        f"paper formula: {summary.paper_ratio:.2f}x"
    )
