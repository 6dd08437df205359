"""Context coder benchmark: bytes of quantized weight index streams under every coder.

For each model (trained ResNet-20 and LeNet-5 checkpoints from ../shared/data/checkpoints; the
MNIST MLP only if a trained checkpoint exists) and each quantization (uniform grid with step
= c * std of the layer, several c; 1-D k-means with k = 16), every conv/linear weight becomes
an index tensor, and the bench prints, summed over the model's layers:

    order-0   sum over layers of n * H(histogram) / 8 (the bound an order-0 coder approaches)
    ans       rANS (stream coder 3, format version 2)
    ctx       the context coder (stream coder 4, format version 3)
    lzma/zlib the index array as int8/int16 bytes, for scale (zstd when installed)

plus ctx / order-0, ctx / ans, encode and decode seconds of both coders, the time and error of
``index_stream_cost`` for ctx, and whole-file bytes (``encode_rdz``) with "ans" against "ctx"
(the latter with grid codebooks, which uniform quantization produces). Never asserts.

    python bench/ctx_coding.py [--out results.csv] [--repeat 1]

``--dq-files A.rdz ...`` instead measures what the trellis state would add as a context for
the levels of dependent-quantization entries (format version 4; DeepCABAC conditions on it):
per file, summed over its DQ entries, the bytes of the stored index streams, and the estimated
bits (semi-static tables + ideal code length, the context writer's own estimator) of the left
context alone (B = 3, no row classes), with the quantizer in use (state >> 1: 2 × 3 contexts)
and with the full state (4 × 3 contexts), the left neighbour and state restarting at every
trellis row.
"""

from __future__ import annotations

import argparse
import csv
import lzma
import time
import zlib
from pathlib import Path

import numpy as np

from rdcompress.codec import (
    DQTensor,
    QuantizedTensor,
    decode_index_stream,
    encode_index_stream,
    encode_rdz,
    index_stream_cost,
)
from rdcompress.codec.entropy import empirical_entropy_bits
from rdcompress.codec.grid import grid_values

CHECKPOINTS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "checkpoints"
MODELS = {"resnet20": "resnet20-12fca82f.th", "lenet5": "lenet5-mnist.pth",
          "mnist-mlp": "mnist-mlp.pth"}
UNIFORM_C = (0.1, 0.25, 0.5, 1.0)


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """Conv/linear weights (ndim >= 2) of a checkpoint, ``module.`` prefixes removed."""
    import torch

    state = torch.load(path, weights_only=True, map_location="cpu")
    state = state.get("state_dict", state)
    return {name.removeprefix("module."): tensor.float().numpy()
            for name, tensor in state.items() if tensor.dim() >= 2}


def uniform(weights: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Grid codebook float32(float64(step) * (j0 + j)) and (shape) indices, step = c * std."""
    step = np.float32(c * weights.std())
    levels = np.round(weights.astype(np.float64) / float(step)).astype(np.int64)
    first = int(levels.min())
    return grid_values(float(step), first, int(levels.max()) - first + 1, "float32"), \
        levels - first


def kmeans(weights: np.ndarray, k: int = 16, iterations: int = 30):
    """1-D Lloyd from quantile centres; codebook sorted ascending, (shape) indices."""
    flat = weights.reshape(-1).astype(np.float64)
    centres = np.quantile(flat, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        edges = (centres[1:] + centres[:-1]) / 2
        assignment = np.searchsorted(edges, flat)
        sums = np.bincount(assignment, weights=flat, minlength=k)
        counts = np.bincount(assignment, minlength=k)
        centres = np.where(counts > 0, sums / np.maximum(counts, 1), centres)
    edges = (centres[1:] + centres[:-1]) / 2
    return centres.astype(np.float32), np.searchsorted(edges, flat).reshape(weights.shape)


def timed(repeat: int, function, *args):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function(*args)
        best = min(best, time.perf_counter() - start)
    return value, best


def measure(model: str, setting: str, layers: dict, repeat: int) -> dict:
    """layers: name -> (codebook, indices of the weight's shape)."""
    row = {"model": model, "quantization": setting, "weights": 0, "order0": 0.0}
    for coder in ("ans", "ctx"):
        row.update({f"{coder}_bytes": 0, f"{coder}_encode_s": 0.0, f"{coder}_decode_s": 0.0})
    row.update(ctx_estimate=0.0, ctx_estimate_s=0.0, lzma=0, zlib=0, worst_layer_estimate=0.0)
    for codebook, indices in layers.values():
        k = codebook.size
        row["weights"] += indices.size
        row["order0"] += empirical_entropy_bits(indices.reshape(-1), k) / 8
        for coder in ("ans", "ctx"):
            data, seconds = timed(repeat, encode_index_stream, indices, k, coder)
            back, back_seconds = timed(repeat, decode_index_stream, data, indices.shape, k)
            assert np.array_equal(back, indices)  # a wrong decode would make the table a lie
            row[f"{coder}_bytes"] += len(data)
            row[f"{coder}_encode_s"] += seconds
            row[f"{coder}_decode_s"] += back_seconds
            if coder == "ctx":
                estimate, estimate_seconds = timed(repeat, index_stream_cost, indices, None, k,
                                                   "ctx")
                row["ctx_estimate"] += estimate
                row["ctx_estimate_s"] += estimate_seconds
                row["worst_layer_estimate"] = max(row["worst_layer_estimate"],
                                                  abs(estimate / len(data) - 1))
        raw = indices.astype(np.int8 if k <= 128 else np.int16).tobytes()
        row["lzma"] += len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
        row["zlib"] += len(zlib.compress(raw, 9))
    tensors = [QuantizedTensor(name, indices.shape, "float32", codebook, indices.reshape(-1))
               for name, (codebook, indices) in layers.items()]
    row["file_ans"] = encode_rdz(tensors, {}, coder="ans")[1].file_bytes
    row["file_ctx"] = encode_rdz(tensors, {}, coder="ctx")[1].file_bytes
    return row


def dq_state_contexts(paths: list[Path]) -> None:
    """Estimated bytes of each DQ file's levels with the trellis state as an extra context."""
    from rdcompress.codec import read_rdz_tensors
    from rdcompress.codec.ctx import _approx_table_bits, left_bucket
    from rdcompress.codec.dq import dq_states

    print(f"{'file':<36} {'DQ levels':>9} {'order-0 B':>9} {'stored B':>9} {'left B':>9} "
          f"{'left+q B':>9} {'left+state B':>12}")
    for path in paths:
        _, tensors = read_rdz_tensors(path)
        totals = dict(count=0, order0=0.0, stored=0, left=0.0, quantizer=0.0, state=0.0)
        for tensor in tensors:
            if not isinstance(tensor, DQTensor):
                continue
            symbols, k = tensor.symbols, tensor.alphabet_size
            totals["stored"] += len(encode_index_stream(symbols, k, "ctx", tensor.shape))
            totals["count"] += symbols.size
            totals["order0"] += empirical_entropy_bits(symbols, k) / 8
            zero = int(np.argmax(np.bincount(symbols, minlength=k)))
            previous = np.concatenate([[zero], symbols[:-1]])
            previous[np.arange(symbols.size) % tensor.cols == 0] = zero
            left = left_bucket(previous, zero, 3)
            state = dq_states(tensor.levels, tensor.cols)
            for key, context, count in (("left", left, 3), ("quantizer", left * 2 + state // 2,
                                                            6),
                                        ("state", left * 4 + state, 12)):
                tables = np.bincount(context * k + symbols, minlength=count * k).reshape(
                    count, k)
                totals[key] += float(_approx_table_bits(tables).sum()) / 8
        print(f"{path.name:<36} {totals['count']:>9} {totals['order0']:>9.0f} "
              f"{totals['stored']:>9} {totals['left']:>9.0f} {totals['quantizer']:>9.0f} "
              f"{totals['state']:>12.0f}")
    print("# stored = the context coder's real streams (row classes, left context, lanes); the "
          "three estimates use no row classes, so compare them with each other")


def print_row(row: dict) -> None:
    print(f"{row['model']:<10} {row['quantization']:<10} {row['weights']:>7} "
          f"{row['order0']:>9.0f} {row['ans_bytes']:>8} {row['ctx_bytes']:>8} "
          f"{row['lzma']:>8} {row['zlib']:>8} "
          f"{row['ctx_bytes'] / row['order0']:>7.4f} {row['ctx_bytes'] / row['ans_bytes']:>7.4f} "
          f"{row['ans_encode_s']:>6.3f} {row['ans_decode_s']:>6.3f} "
          f"{row['ctx_encode_s']:>6.3f} {row['ctx_decode_s']:>6.3f} "
          f"{row['ctx_estimate_s']:>6.3f} {row['ctx_estimate'] / row['ctx_bytes'] - 1:>+7.4f} "
          f"{row['worst_layer_estimate']:>6.3f} {row['file_ans']:>8} {row['file_ctx']:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write every row as CSV here")
    parser.add_argument("--repeat", type=int, default=1, help="timings: best of N runs")
    parser.add_argument("--dq-files", type=Path, nargs="+", help="measure the trellis state as "
                        "a context on these files' DQ entries instead")
    args = parser.parse_args()
    if args.dq_files:
        dq_state_contexts(args.dq_files)
        return
    rows = []
    try:
        import zstandard  # noqa: F401

        print("# zstd available but not tabulated (lzma is the stronger general compressor)")
    except ImportError:
        print("# zstd: the zstandard package is not installed here (no new dependencies); "
              "lzma and zlib stand in")
    print(f"{'model':<10} {'quant':<10} {'weights':>7} {'order-0 B':>9} {'ans B':>8} "
          f"{'ctx B':>8} {'lzma B':>8} {'zlib B':>8} {'ctx/H0':>7} {'ctx/ans':>7} "
          f"{'ans enc':>6} {'ans dec':>6} {'ctx enc':>6} {'ctx dec':>6} {'est s':>6} "
          f"{'est err':>7} {'worst':>6} {'file ans':>8} {'file ctx':>8}")
    for model, filename in MODELS.items():
        path = CHECKPOINTS / filename
        if not path.exists():
            print(f"# {model}: no trained checkpoint at {path}; skipped")
            continue
        weights = load_weights(path)
        settings = {f"u c={c}": {n: uniform(w, c) for n, w in weights.items()}
                    for c in UNIFORM_C}
        settings["kmeans16"] = {n: kmeans(w) for n, w in weights.items()}
        for setting, layers in settings.items():
            row = measure(model, setting, layers, args.repeat)
            rows.append(row)
            print_row(row)
    print("# seconds are sums over the model's layers (best of --repeat runs); est err = "
          "(sum of index_stream_cost) / (sum of ctx bytes) - 1; worst = largest per-layer "
          "|estimate / real - 1|; file = whole .rdz (codebooks, header) with coder ans / ctx")
    if args.out:
        with open(args.out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
