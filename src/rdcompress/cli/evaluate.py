"""``rdcompress evaluate``: accuracy, cross-entropy, KL to an original model, calibration."""

from __future__ import annotations

import argparse

from rdcompress.cli._common import (
    add_data_arguments,
    add_model_arguments,
    check_dataset,
    check_outputs,
    model_files,
    print_table,
    write_json,
)
from rdcompress.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a model (and its distortion against an original)",
        description="Evaluate MODEL on held-out data: accuracy and cross-entropy; with "
        "--reference, the distortion against the original model: E_x KL(f_compressed || "
        "f_original), the reverse KL and top-1 agreement; with --calibrate, temperature "
        "scaling fitted on the validation split and the expected calibration error before "
        "and after.",
        epilog="examples:\n  rdcompress evaluate runs/digits-mlp.safetensors --calibrate\n"
        "  rdcompress evaluate model.rdz --reference runs/digits-mlp.safetensors\n"
        "  rdcompress evaluate resnet20 --weights resnet20-12fca82f.th --data cifar10-jpeg "
        "--data-dir ../shared/data",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.add_argument("--reference", help="the original model (same forms as MODEL) to "
                        "measure distortion against")
    add_data_arguments(parser)
    parser.add_argument("--calibrate", action="store_true",
                        help="fit a temperature on the val split; report ECE before/after")
    parser.add_argument("--json", dest="json_out", help="also write the results as JSON here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdcompress.api import open_model
    from rdcompress.data import load_dataset
    from rdcompress.evaluate import calibrate, classification_metrics, collect_outputs
    from rdcompress.pipeline import check_model_fits_data, make_loader

    reference_files = {f"--reference{k.removeprefix('MODEL')}": v
                       for k, v in model_files(args.reference).items()}
    check_dataset(args.data)
    check_outputs({"--json": args.json_out},
                  {**model_files(args.model, args.weights), **reference_files})
    loaded = open_model(args.model, weights=args.weights, arch=args.arch,
                        trust_code=args.trust_code)
    dataset_name = args.data or loaded.dataset
    if dataset_name is None:
        raise ConfigError("no dataset known for this model: pass --data NAME")

    def outputs(module, split, name=None):
        data = load_dataset(dataset_name, split=split, data_dir=args.data_dir)
        loader = make_loader(data, loaded.preprocessing, args.batch_size, limit=args.limit)
        if name is not None:  # before the long pass: does the model take these inputs?
            check_model_fits_data(module, loader, name, dataset_name)
        return collect_outputs(module, loader)

    reference = None
    if args.reference:  # loaded first: a bad reference fails before any evaluation
        reference = open_model(args.reference, trust_code=args.trust_code)
    logits, labels = outputs(loaded.module, args.split, args.model)
    reference_logits = None
    if reference is not None:
        reference_logits = outputs(reference.module, args.split, args.reference)[0]
    metrics = classification_metrics(logits, labels, reference_logits)
    result = {"model": args.model, "dataset": dataset_name, "split": args.split,
              **metrics.to_dict()}
    columns = ["num_samples", "accuracy", "cross_entropy"]
    if reference_logits is not None:
        columns += ["kl", "reverse_kl", "agreement"]
    print_table([result], ["dataset", "split", *columns])
    if args.calibrate:
        val_logits, val_labels = outputs(loaded.module, "val")
        report = calibrate(val_logits, val_labels, logits, labels)
        result["calibration"] = report.to_dict()
        print()
        print_table([report.to_dict()])
    if args.json_out:
        write_json(args.json_out, result)
    return 0
