"""``rdcompress sweep``: the main job — a rate–distortion sweep with tables, plots and a summary."""

from __future__ import annotations

import argparse

from rdcompress.cli._common import (
    add_trust_argument,
    check_output_dir,
    comma_list,
    positive_int,
    print_table,
)

_floats, _ints, _names = comma_list(float), comma_list(int), comma_list(str)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="rate–distortion sweep: the main job (default: digits, no download)",
        description="Compress one model with every (method, objective, setting) in a grid, "
        "write each as a real .rdz file, evaluate it against the original on held-out data, "
        "and write results.csv/json, plots (accuracy and cross-entropy vs ratio per objective; "
        "KL vs bits per weight) and summary.md to the output directory. Interrupted sweeps "
        "resume; trained models and importance estimates are cached there.",
        epilog="examples:\n  rdcompress sweep                  # digits, a few minutes\n"
        "  rdcompress sweep --model mnist-mlp --data-dir ../shared/data\n"
        "  rdcompress sweep --model resnet20 --weights ../shared/data/checkpoints/"
        "resnet20-12fca82f.th --data cifar10-jpeg --data-dir ../shared/data\n"
        "  rdcompress sweep --methods prune,quantize,prune+quantize,lowrank+quantize \\\n"
        "      --lowrank-metric whiten --objectives baseline,fisher   # equal file size\n"
        "  rdcompress sweep --methods prune --objectives baseline,gradient,hessian \\\n"
        "      --kept 0.05,0.075,0.1 --vary temperature=1,2,3,4,5,6,7,8,9   # App. C.3.1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default="digits-mlp",
                        help="zoo name (trained first unless --weights), or a trained "
                        ".safetensors with sidecar (default: digits-mlp)")
    parser.add_argument("--weights", help="weights for a zoo --model (skips training)")
    add_trust_argument(parser)
    parser.add_argument("--data", help="dataset (default: the model's)")
    parser.add_argument("--data-dir", help="where dataset files are")
    parser.add_argument("-o", "--output-dir", help="default: runs/sweep-MODEL")
    parser.add_argument("--methods", type=_names, default=("prune", "quantize"),
                        help="comma-separated: prune, quantize, prune+quantize, lowrank, "
                             "lowrank+quantize, greedy-prune, greedy-quantize (default "
                             "prune,quantize); with several methods the sweep also writes "
                             "frontier.png/.csv, the methods at equal file size; the greedy "
                             "methods "
                             "score weights by the calibration loss, so they run once per "
                             "setting under the objective name 'loss'")
    parser.add_argument("--objectives", type=_names,
                        default=("baseline", "fisher", "gradient", "hessian", "gradient+hessian"),
                        help="comma-separated objectives (default: all five)")
    parser.add_argument("--kept", type=_floats, default=(0.05, 0.1, 0.2, 0.3, 0.5),
                        help="pruning: kept fractions per layer (default 0.05,0.1,0.2,0.3,0.5)")
    parser.add_argument("--clusters", type=_ints, default=(2, 3, 4, 8, 16),
                        help="quantization: centroids per layer (default 2,3,4,8,16)")
    parser.add_argument("--ranks", type=_floats, default=(0.05, 0.1, 0.2, 0.3, 0.5),
                        help="low rank: fraction of the layers' numbers kept, ranks allocated "
                             "globally by each objective (default 0.05,0.1,0.2,0.3,0.5)")
    parser.add_argument("--lowrank-metric", default="weighted",
                        choices=["weighted", "fwsvd", "svd", "whiten"],
                        help="low rank projection for non-baseline objectives: element-wise "
                             "weighted by I (default), FWSVD rows, plain SVD, or whitened by the "
                             "calibration inputs' second moments; the baseline is plain SVD")
    parser.add_argument("--lowrank-storage", default="float16",
                        choices=["float32", "float16", "quantized"],
                        help="how factors are stored (quantized: 4-bit codebooks + ANS)")
    parser.add_argument("--combine-clusters", type=int, default=16,
                        help="k of the quantizer in prune+quantize (the kept weights, settings "
                             "from --kept) and lowrank+quantize (each factor, settings from "
                             "--ranks) (default 16)")
    parser.add_argument("--greedy-p", type=_floats, default=(0.1, 0.2, 0.3, 0.5),
                        help="greedy pruning: keep probabilities p (default 0.1,0.2,0.3,0.5)")
    parser.add_argument("--greedy-k", type=_ints, default=(1, 2, 4, 8),
                        help="greedy quantization: grid spacing M/k (default 1,2,4,8)")
    parser.add_argument("--greedy-alpha", type=float, default=0.9,
                        help="fraction of each layer the greedy loop replaces (default 0.9)")
    parser.add_argument("--algorithm", default="lloyd",
                        help="quantizer: lloyd (the paper's) | optimal | entropy")
    parser.add_argument("--coder", default="ans", choices=["ans", "huffman"])
    parser.add_argument("--calibration-samples", type=positive_int, default=1024,
                        help="training samples for importance estimates (default 1024)")
    parser.add_argument("--temperature", default="1.0",
                        help="importance temperature T, or 'auto' (fit on the val split)")
    parser.add_argument("--mu", type=float, default=0.0,
                        help="Hessian regularizer μ (App. C.3.2), default 0")
    parser.add_argument("--eval-limit", type=positive_int,
                        help="evaluate on N test samples spread evenly over the split")
    parser.add_argument("--epochs", type=positive_int,
                        help="training epochs if the model is trained")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vary", metavar="NAME=V1,V2,...",
                        help="one sweep per value of the importance temperature or the Hessian "
                             "regularizer (App. C.3): temperature=1,2,...,9 or mu=0,1e-4,1e-3; "
                             "writes vary-NAME.csv/json/png/md beside the sub-sweeps")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdcompress.sweep import SweepConfig, run_sweep

    temperature: float | str = args.temperature
    if temperature != "auto":
        temperature = float(temperature)
    stem = args.model.rsplit("/", 1)[-1].removesuffix(".safetensors")
    check_output_dir("-o", args.output_dir or f"runs/sweep-{stem}")
    config = SweepConfig(
        model=args.model, weights=args.weights, data=args.data, data_dir=args.data_dir,
        output_dir=args.output_dir or f"runs/sweep-{stem}", methods=args.methods,
        objectives=args.objectives, kept_fractions=args.kept, clusters=args.clusters,
        ranks=args.ranks, lowrank_metric=args.lowrank_metric,
        lowrank_storage=args.lowrank_storage, greedy_p=args.greedy_p, greedy_k=args.greedy_k,
        greedy_alpha=args.greedy_alpha, combine_clusters=args.combine_clusters,
        algorithm=args.algorithm, coder=args.coder,
        calibration_samples=args.calibration_samples, temperature=temperature,
        hessian_mu=args.mu, eval_limit=args.eval_limit, train_epochs=args.epochs,
        seed=args.seed, trust_code=args.trust_code,
    )
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


def _run_vary(config, text: str) -> int:
    from rdcompress.vary import best_values, parse_vary, run_vary

    parameter, values = parse_vary(text)
    result = run_vary(config, parameter, values)
    best = best_values(result.rows, "accuracy")
    print_table([{"method": k[0], "objective": k[1], "setting": k[2], parameter: r["varied"],
                  "accuracy": r["accuracy"], "cross_entropy": r["cross_entropy"]}
                 for k, r in sorted(best.items())],
                ["method", "objective", "setting", parameter, "accuracy", "cross_entropy"])
    print(f"wrote {result.output_dir}/vary-{parameter}.csv, .json, .png, .md and one sub-sweep "
          f"per value ({result.seconds:.1f} s)")
    return 0
