"""Dense vs compressed modules at run time: resident weight memory, CPU latency, exports.

For each model and setting: compress (baseline objective), save the .rdz, then side by side in
one process: the dense module (``rdcompress.compress.load``), the compressed module
(``rdcompress.deploy.load_compressed``, decoding each weight per forward) and the same with
``cache=True`` (decoded once, the dense memory back); their resident weight bytes
(``deploy.total_weight_bytes``: parameters + buffers, BatchNorm statistics included) and the
median forward latency on CPU at batch 1 and 256; test accuracy of each and the compressed
module's max |Δ| against the dense load; then the ONNX exports (compressed and dense): file
sizes beside the .rdz, their outputs under onnxruntime against the dense load on the test
images (max |Δ|, argmax agreement) and their latency. Prints ratios; asserts nothing.

    python bench/runtime.py --models mnist-mlp resnet20 --out runs/runtime

mnist-mlp needs runs/mnist-mlp.safetensors (``rdcompress train --model mnist-mlp --data-dir
../shared/data --epochs 3 -o runs/mnist-mlp.safetensors``); resnet20 reads
../shared/data/checkpoints/resnet20-12fca82f.th.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rdcompress.compress import PruneQuantizeConfig, QuantizeConfig, compress, load
from rdcompress.data import load_dataset
from rdcompress.deploy import load_compressed, total_weight_bytes
from rdcompress.deploy.export import ExportOptions, export
from rdcompress.models import load_model
from rdcompress.pipeline import dataset_tensors

HERE = Path(__file__).resolve().parent
SHARED_DATA = HERE.parents[1] / "shared" / "data"
MODELS = {  # name -> (MODEL argument of load_model, weights, test dataset)
    "mnist-mlp": ("runs/mnist-mlp.safetensors", None, "mnist"),
    "resnet20": ("resnet20", SHARED_DATA / "checkpoints" / "resnet20-12fca82f.th",
                 "cifar10-jpeg"),
}
SETTINGS = {
    "k16": QuantizeConfig(clusters=16),
    "k4": QuantizeConfig(clusters=4),
    "prune50-k16": PruneQuantizeConfig(kept_fraction=0.5, clusters=16),
}


def median_latency_ms(runs: dict[str, object], repeats: int) -> dict[str, float]:
    """{name: median ms of one call, name_min: the fastest call}; the calls are interleaved
    (one of each per round), so that load from other processes on the machine hits every
    variant alike. On a busy machine the minimum is the better estimate of the intrinsic cost;
    the median says what a user of that machine sees."""
    for run in runs.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(values) for name, values in times.items()} | {
        f"{name}_min": 1000 * min(values) for name, values in times.items()}


def forward_latency(modules: dict[str, nn.Module], example: torch.Tensor,
                    repeats: dict[int, int]) -> dict[str, dict[int, float]]:
    """{module name: {batch: median ms of one forward}} for batches of ``example``."""
    result: dict[str, dict[int, float]] = {name: {} for name in modules}
    with torch.no_grad():
        for batch, count in repeats.items():
            x = example.expand(batch, *example.shape[1:]).contiguous()
            runs = {name: (lambda x=x, m=m: m(x)) for name, m in modules.items()}
            timed = median_latency_ms(runs, count)
            for name in modules:
                result[name][batch] = timed[name]
                result[name][-batch] = timed[f"{name}_min"]  # negative key: the minimum
    return result


def predict(module: nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([module(chunk) for chunk in images.split(500)])


def onnx_case(rdz: Path, folder: Path, images: torch.Tensor, expected: torch.Tensor,
              repeats: dict[int, int]) -> dict:
    import onnxruntime

    row: dict = {}
    for kind, compressed in (("onnx", True), ("onnx_dense", False)):
        out = folder / f"{rdz.stem}-{kind}.onnx"
        export(rdz, "onnx", out, ExportOptions(input_shape=tuple(images.shape[1:]),
                                               compressed=compressed))
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])

        def run(x: np.ndarray, session=session) -> np.ndarray:
            return session.run(["output"], {"input": x})[0]

        got = torch.from_numpy(np.concatenate([run(c.numpy()) for c in images.split(500)]))
        row[f"{kind}_bytes"] = out.stat().st_size
        row[f"{kind}_max_abs_diff"] = float((got - expected).abs().max())
        row[f"{kind}_argmax_agreement"] = float((got.argmax(1) == expected.argmax(1))
                                                .float().mean())
        example = images[:1].numpy()
        for batch, count in repeats.items():
            x = np.ascontiguousarray(np.broadcast_to(example, (batch, *example.shape[1:])))
            timed = median_latency_ms({kind: lambda x=x, run=run: run(x)}, count)
            row[f"{kind}_ms_b{batch}"] = timed[kind]
            row[f"{kind}_min_ms_b{batch}"] = timed[f"{kind}_min"]
    return row


def run_model(name: str, args: argparse.Namespace, folder: Path) -> list[dict]:
    source, weights, dataset_name = MODELS[name]
    loaded = load_model(source, weights=weights)
    dataset = load_dataset(dataset_name, split="test", data_dir=str(args.data_dir))
    images, labels = dataset_tensors(dataset)
    if args.eval_limit < len(labels):  # evenly spaced subset
        index = torch.from_numpy(np.unique(np.linspace(0, len(labels) - 1, args.eval_limit)
                                           .round().astype(np.int64)))
        images, labels = images[index], labels[index]
    images = loaded.preprocessing(images)
    repeats = {1: args.repeats_b1, 256: args.repeats_b256}
    rows = []
    for setting in args.settings:
        rdz = folder / f"{name}-{setting}.rdz"
        compress(loaded.module, SETTINGS[setting], None, model_spec=loaded.spec).save(rdz)
        dense = load(rdz)
        variants = {"dense": dense, "compressed": load_compressed(rdz),
                    "cached": load_compressed(rdz, cache=True)}
        expected = predict(dense, images)
        row = {"model": name, "setting": setting, "rdz_bytes": rdz.stat().st_size,
               "test_images": len(labels)}
        for kind, module in variants.items():
            outputs = predict(module, images)
            row[f"{kind}_accuracy"] = float((outputs.argmax(1) == labels).float().mean())
            row[f"{kind}_max_abs_diff"] = float((outputs - expected).abs().max())
        for kind, by_batch in forward_latency(variants, images[:1], repeats).items():
            for batch, ms in by_batch.items():
                row[f"{kind}_ms_b{batch}" if batch > 0 else f"{kind}_min_ms_b{-batch}"] = ms
        for kind, module in variants.items():  # after the forwards: the caches are filled
            row[f"{kind}_weight_bytes"] = total_weight_bytes(module)
        if not args.skip_onnx:
            row.update(onnx_case(rdz, folder, images, expected, repeats))
        rows.append(row)
        print_row(row)
    return rows


def print_row(row: dict) -> None:
    dense_bytes = row["dense_weight_bytes"]
    print(f"\n{row['model']} {row['setting']}: .rdz {row['rdz_bytes']:,} B; test accuracy "
          f"dense {row['dense_accuracy']:.4f}, compressed {row['compressed_accuracy']:.4f} "
          f"(max |Δ| {row['compressed_max_abs_diff']:.2e})")
    print(f"  {'module':<11} {'weight bytes':>13} {'/dense':>7}   ms b=1 median (min) /dense"
          f"   ms b=256 median (min) /dense")
    for kind in ("dense", "compressed", "cached"):
        print(f"  {kind:<11} {row[f'{kind}_weight_bytes']:>13,} "
              f"{row[f'{kind}_weight_bytes'] / dense_bytes:>7.3f}   {_ms(row, kind, 1)}"
              f"   {_ms(row, kind, 256)}")
    if "onnx_bytes" in row:
        for kind in ("onnx", "onnx_dense"):
            print(f"  {kind:<11} file {row[f'{kind}_bytes']:>10,} B "
                  f"(x{row[f'{kind}_bytes'] / row['rdz_bytes']:.2f} the .rdz), onnxruntime "
                  f"max |Δ| {row[f'{kind}_max_abs_diff']:.2e}, argmax agreement "
                  f"{row[f'{kind}_argmax_agreement']:.4f}; ms b=1 {row[f'{kind}_ms_b1']:.3f} "
                  f"(min {row[f'{kind}_min_ms_b1']:.3f}), b=256 {row[f'{kind}_ms_b256']:.2f} "
                  f"(min {row[f'{kind}_min_ms_b256']:.2f})")


def _ms(row: dict, kind: str, batch: int) -> str:
    """'median (min) ratio' of a module's latency, the ratios to the dense module's."""
    median, least = row[f"{kind}_ms_b{batch}"], row[f"{kind}_min_ms_b{batch}"]
    ratio = median / row[f"dense_ms_b{batch}"]
    least_ratio = least / row[f"dense_min_ms_b{batch}"]
    return f"{median:8.3f} ({least:8.3f}) x{ratio:.2f} (x{least_ratio:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    parser.add_argument("--eval-limit", type=int, default=2000,
                        help="evenly spaced test images (default 2000)")
    parser.add_argument("--repeats-b1", type=int, default=100)
    parser.add_argument("--repeats-b256", type=int, default=10)
    parser.add_argument("--skip-onnx", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's own choice)")
    parser.add_argument("--out", type=Path, default=Path("runs/runtime"))
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            rows += run_model(name, args, Path(folder))
    with open(args.out / "runtime.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    settings = {name: {"method": c.method, **c.to_dict()} for name, c in SETTINGS.items()}
    (args.out / "runtime.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "settings": settings,
         "torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows},
        indent=1))
    print(f"\nwrote {args.out / 'runtime.csv'} and runtime.json")


if __name__ == "__main__":
    main()
