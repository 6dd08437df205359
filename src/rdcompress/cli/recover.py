"""``rdcompress recover``: fine-tune a compressed model inside its structure, write a new .rdz."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rdcompress.cli._common import (
    add_data_arguments,
    add_trust_argument,
    check_dataset,
    check_outputs,
    model_files,
    print_table,
    write_json,
)
from rdcompress.errors import ConfigError


def non_negative_int(text: str) -> int:
    """An argparse ``type=`` for --epochs (0 = level 0 only)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be >= 0 (0 = level 0 only: BatchNorm "
                                         "re-estimation and bias correction)")
    return value


non_negative_int.__name__ = "non-negative integer"  # argparse names the type in its errors


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "recover", help="recover accuracy: fine-tune a .rdz inside its structure",
        description="Recover the accuracy compression took, keeping the file honest: level 0 "
        "(BatchNorm statistics re-estimated on --data; with --bias-correction the expected "
        "output shift of each compressed layer folded into its bias), then --epochs of "
        "fine-tuning in which pruned weights stay zero and quantized weights keep their "
        "cluster indices while the codebooks train (raw tensors such as biases train freely). "
        "The loss is the task's cross-entropy (--loss task), the KL divergence to the original "
        "model --reference (distill, no labels needed) or a mix. Writes a new .rdz with the "
        "same indices and masks and the trained codebooks; 'rdcompress.load' of it gives "
        "exactly the evaluated model.",
        epilog="examples:\n"
        "  rdcompress recover q4.rdz --reference runs/mnist-mlp.safetensors --data mnist "
        "--data-dir ../shared/data --epochs 2 -o q4-recovered.rdz\n"
        "  rdcompress recover pq.rdz --loss task --epochs 3 --lr 1e-4 -o pq-r.rdz "
        "--checkpoint pq.ckpt\n"
        "  rdcompress recover r20.rdz --reference resnet20 --weights resnet20-12fca82f.th "
        "--data cifar10-jpeg --epochs 0 -o r20-bn.rdz    # level 0 only",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="the compressed .rdz file to recover")
    parser.add_argument("--arch", help="architecture of a .rdz whose manifest names no zoo "
                        "model: a zoo name or package.module:factory (the code you name is run)")
    add_trust_argument(parser)
    parser.add_argument("--reference", help="the original model (a .safetensors with its "
                        "sidecar, a zoo name with --weights, ...): the teacher of --loss "
                        "distill|mix and W of --bias-correction")
    parser.add_argument("--weights", help="weights of a zoo-name or package.module:factory "
                        "--reference")
    add_data_arguments(parser, split="train")
    parser.add_argument("--eval-split", default="test", choices=["train", "val", "test", "none"],
                        help="split to report accuracy and agreement on after level 0 and every "
                        "epoch (default: test; none: skip)")
    parser.add_argument("--eval-limit", type=int, help="use only the first N evaluation samples")
    parser.add_argument("--epochs", type=non_negative_int, default=1,
                        help="fine-tuning epochs (default 1; 0 = level 0 only)")
    parser.add_argument("--loss", choices=("distill", "task", "mix"), default="distill",
                        help="distill: KL to --reference (default); task: cross-entropy on "
                        "labels; mix: --mix-weight·task + (1 − it)·distill")
    parser.add_argument("--lr", type=float, default=1e-4, help="peak learning rate, cosine "
                        "decay to 0 (default 1e-4)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="distillation temperature T (default 1; the KL is scaled by T²)")
    parser.add_argument("--mix-weight", type=float, default=0.5,
                        help="weight of the task loss in --loss mix (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="shuffling and dropout seed")
    parser.add_argument("--no-bn", dest="bn", action="store_false",
                        help="do not re-estimate BatchNorm statistics")
    parser.add_argument("--bias-correction", action="store_true",
                        help="fold each compressed layer's mean output shift into its bias "
                        "(needs --reference)")
    parser.add_argument("--calibration-batches", type=int,
                        help="level-0 batches of --data (default: all)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu; e.g. cuda)")
    parser.add_argument("--checkpoint", help="resume from / save to this file after each epoch")
    parser.add_argument("-o", "--output", required=True, help="the recovered .rdz to write")
    parser.add_argument("--json", dest="json_out", help="also write the history as JSON here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdcompress.api import open_model
    from rdcompress.data import load_dataset
    from rdcompress.pipeline import check_model_fits_data, make_loader
    from rdcompress.recover import RecoverConfig, recover

    if Path(args.model).suffix != ".rdz":
        raise ConfigError(f"MODEL {args.model!r} is not a .rdz file; compress it first "
                          "('rdcompress compress ... -o model.rdz')")
    if not Path(args.model).is_file():
        raise ConfigError(f"MODEL {args.model!r} does not exist; check the path")
    if Path(args.output).suffix != ".rdz":
        raise ConfigError(f"-o {args.output!r} must end in .rdz")
    config = RecoverConfig(
        epochs=args.epochs, lr=args.lr, loss=args.loss, temperature=args.temperature,
        mix_weight=args.mix_weight, batch_size=args.batch_size, seed=args.seed, bn=args.bn,
        bias_correction=args.bias_correction, calibration_batches=args.calibration_batches)
    if config.needs_original and args.reference is None:
        also = " with --bias-correction" if args.bias_correction else ""
        raise ConfigError(f"--loss {args.loss}{also} needs the original model: pass "
                          "--reference (e.g. runs/model.safetensors), or use --loss task")
    if args.weights and not args.reference:
        raise ConfigError("--weights are the weights of --reference; give --reference too")
    if args.eval_limit is not None and args.eval_limit < 1:
        raise ConfigError(f"--eval-limit {args.eval_limit} must be >= 1")
    check_dataset(args.data)
    reference_files = {f"--reference{k.removeprefix('MODEL')}": v
                       for k, v in model_files(args.reference, args.weights).items()}
    check_outputs({"-o": args.output, "--json": args.json_out, "--checkpoint": args.checkpoint},
                  {"MODEL": args.model, **reference_files})
    loaded = open_model(args.model, arch=args.arch, trust_code=args.trust_code)
    reference = None
    if args.reference:
        reference = open_model(args.reference, weights=args.weights, trust_code=args.trust_code)
    dataset_name = args.data or loaded.dataset or (reference.dataset if reference else None)
    if dataset_name is None:
        raise ConfigError("no dataset known for this model: pass --data NAME")
    data = load_dataset(dataset_name, split=args.split, data_dir=args.data_dir)
    train = make_loader(data, loaded.preprocessing, args.batch_size, shuffle=True,
                        seed=args.seed, limit=args.limit)
    check_model_fits_data(loaded.module, train, args.model, dataset_name)
    evaluation = None
    if args.eval_split != "none":
        evaluation = make_loader(load_dataset(dataset_name, split=args.eval_split,
                                              data_dir=args.data_dir),
                                 loaded.preprocessing, 512, limit=args.eval_limit)
    result = recover(args.model, train, config, reference.module if reference else None,
                     model=loaded.module, eval_data=evaluation, checkpoint=args.checkpoint,
                     device=args.device, trust_code=args.trust_code)
    summary = result.save(args.output)
    before, after = os.path.getsize(args.model), summary.file_bytes
    if result.history:
        columns = [c for c in ("epoch", "loss", "train_accuracy", "accuracy", "agreement", "kl",
                               "seconds") if any(c in row for row in result.history)]
        print_table(result.history, columns)
    print(f"wrote {args.output}: {after} bytes (input {before} bytes)")
    if args.json_out:
        write_json(args.json_out, {"model": args.model, "output": args.output,
                                   "bytes_before": before, "bytes_after": after,
                                   "settings": config.to_dict(), "level0": result.level0,
                                   "history": result.history})
    return 0
