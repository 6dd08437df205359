"""``rdcompress train``: train a zoo model deterministically and save safetensors + sidecar."""

from __future__ import annotations

import argparse
from pathlib import Path

from rdcompress.cli._common import check_outputs, positive_int, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a zoo model deterministically",
        description="Train a zoo model on its dataset with a fixed seed; write OUT.safetensors "
        "and a sidecar OUT.json (architecture, dataset, preprocessing, accuracy, seed).",
        epilog="example: rdcompress train --model mnist-mlp --data-dir ../shared/data "
        "--epochs 10 -o runs/mnist-mlp.safetensors",
    )
    parser.add_argument("--model", default="digits-mlp", help="zoo name (default: digits-mlp)")
    parser.add_argument("--data", help="dataset (default: the model's own)")
    parser.add_argument("--data-dir", help="where dataset files are")
    parser.add_argument("--epochs", type=positive_int, default=None,
                        help="training epochs (default: 40 for digits, 10 otherwise)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=positive_int, help="train on the first N samples only")
    parser.add_argument("-o", "--output",
                        help="output .safetensors (default: runs/MODEL.safetensors)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdcompress.train import TrainConfig, save_trained, train

    epochs = args.epochs or (40 if args.model == "digits-mlp" else 10)
    output = Path(args.output or f"runs/{args.model}.safetensors")
    check_outputs({"-o": output, "its sidecar": output.with_suffix(".json")}, {})
    config = TrainConfig(model=args.model, dataset=args.data, data_dir=args.data_dir,
                         epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, optimizer=args.optimizer,
                         seed=args.seed, limit=args.limit)
    result = train(config)
    sidecar = save_trained(result, output)
    rows = [{"split": split, **values} for split, values in result.metrics.items()]
    print_table(rows, ["split", "num_samples", "accuracy", "cross_entropy"])
    print(f"wrote {output} and {sidecar} ({result.seconds:.1f} s)")
    return 0
