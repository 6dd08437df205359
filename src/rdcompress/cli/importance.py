"""``rdcompress importance``: per-parameter importance of a model, saved as safetensors."""

from __future__ import annotations

import argparse

from rdcompress.cli._common import (
    add_data_arguments,
    add_model_arguments,
    check_dataset,
    check_outputs,
    model_files,
    print_table,
    temperature,
)
from rdcompress.errors import ConfigError
from rdcompress.importance.config import HESSIAN_METHODS, OBJECTIVES

EPILOG = """\
objectives:
  baseline          ones: the magnitude objective sum (w - w^)^2
  fisher            E_x[sum_c (df_c/dw)^2 / f_c], f = softmax(z/T) (paper Table 1), exact
  fisher-mc         the same, estimated with --mc-samples labels drawn from f
  output            E_x[sum_j (dz_j/dw)^2] (paper eq. 5, regression outputs)
  gradient          E[(dL/dw)^2], per-sample loss gradients (paper Table 2)
  hessian           E[d2L/dw2] + mu (Table 2, OBD; App. C.3.2)
  gradient+hessian  E[(dL/dw)^2] and E[(d2L/dw2)^2] (Table 2, quartic objective)

examples:
  rdcompress importance runs/digits-mlp.safetensors --objective fisher -o imp.safetensors
  rdcompress importance resnet20 --weights resnet20-12fca82f.th --data cifar10-jpeg \\
      --data-dir ../shared/data --limit 2048 --objective gradient --temperature auto \\
      -o resnet20-gradient.safetensors
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "importance", help="compute per-weight importance on calibration data",
        description="Compute the diagonal importance of every parameter of MODEL over a "
        "calibration set (the --split of --data, first --limit samples), exactly per sample, "
        "and save it as safetensors keyed by parameter name, with the objective, temperature, "
        "sample count and a hash of the weights. 'rdcompress compress' reads it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    add_data_arguments(parser, split="train")
    parser.add_argument("--objective", default="fisher", choices=list(OBJECTIVES),
                        help="importance objective (default: fisher)")
    parser.add_argument("--temperature", type=temperature, default=1.0,
                        help="softmax temperature T > 0, or 'auto' to fit T on the val split "
                        "(paper App. C.3.1; default: 1.0)")
    parser.add_argument("--heldout-split", default="val", choices=["train", "val", "test"],
                        help="split used to fit --temperature auto (default: val)")
    parser.add_argument("--mc-samples", type=int, default=1,
                        help="labels drawn per input for fisher-mc (default: 1)")
    parser.add_argument("--mu", type=float, default=0.0,
                        help="added to the Hessian diagonal (App. C.3.2; default: 0)")
    parser.add_argument("--hessian-method", default="exact", choices=list(HESSIAN_METHODS),
                        help="diagonal Hessian estimator (default: exact)")
    parser.add_argument("--num-probes", type=int, default=None,
                        help="random probes per sample for stochastic estimators (default: 2 "
                        "for gradient+hessian, whose unbiased squares need 2; else 1)")
    parser.add_argument("--chunk-size", type=int, default=64,
                        help="samples per forward pass; bounds memory (default: 64)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                        help="compute dtype (default: float32)")
    parser.add_argument("--exclude-frozen", action="store_true",
                        help="skip parameters with requires_grad=False (default: score them)")
    parser.add_argument("--seed", type=int, default=0, help="seed for sampled labels/probes")
    parser.add_argument("-o", "--output", required=True, help="output .safetensors file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rdcompress.api import open_model
    from rdcompress.data import load_dataset
    from rdcompress.importance import ImportanceConfig, compute_importance
    from rdcompress.pipeline import check_model_fits_data, make_loader

    config = ImportanceConfig(
        objective=args.objective, temperature=args.temperature, mc_samples=args.mc_samples,
        mu=args.mu, hessian_method=args.hessian_method, num_probes=args.num_probes,
        chunk_size=args.chunk_size, max_samples=args.limit, dtype=args.dtype,
        include_frozen=not args.exclude_frozen, seed=args.seed)
    check_dataset(args.data)
    check_outputs({"-o": args.output}, model_files(args.model, args.weights))
    loaded = open_model(args.model, weights=args.weights, arch=args.arch,
                        trust_code=args.trust_code)
    dataset_name = args.data or loaded.dataset
    if dataset_name is None and config.objective != "baseline":
        raise ConfigError("no dataset known for this model: pass --data NAME")

    def loader(split: str, limit: int | None):
        assert dataset_name is not None  # refused above for every objective that loads data
        data = load_dataset(dataset_name, split=split, data_dir=args.data_dir)
        return make_loader(data, loaded.preprocessing, args.batch_size, limit=limit)

    calibration = loader(args.split, args.limit) if config.objective != "baseline" else []
    if calibration:
        assert dataset_name is not None
        check_model_fits_data(loaded.module, calibration, args.model, dataset_name)
    heldout = loader(args.heldout_split, None) if config.temperature == "auto" else None
    importance = compute_importance(loaded.module, calibration, config=config, heldout=heldout)
    importance.metadata["model"] = loaded.spec
    importance.metadata["dataset"] = {"name": dataset_name, "split": args.split,
                                      "limit": args.limit}
    importance.save(args.output)
    rows = [{"parameter": name, "shape": "x".join(map(str, value.shape)),
             "mean": float(value.mean()), "max": float(value.max())}
            for name, value in importance.quadratic.items()]
    print_table(rows)
    shown_t = "-" if importance.temperature is None else f"{importance.temperature:.4g}"
    print(f"\nobjective {importance.objective}, T = {shown_t}, "
          f"{importance.num_samples} samples -> {args.output}")
    return 0
