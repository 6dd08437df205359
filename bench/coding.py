"""Coding benchmark: how close is a .rdz file to the entropy of what it stores?

For each weight source, codebook size k and prune ratio, the bench quantizes every conv/linear
weight with a simple quantile quantizer of its own (magnitude pruning first), keeps every other
tensor raw, writes the container with the ANS and the Huffman coder, and prints

    file bytes / (empirical entropy of index + position streams + codebooks + raw + manifest)

measured side by side in one run (target for ANS: <= 1.01), plus both compression ratios.
Sources: synthetic Gaussian and Laplace layers, a freshly initialized mnist-mlp (784-256-256-10;
no trained MNIST net ships with the repository) and the trained ResNet-20 checkpoint from
../shared/data/checkpoints when present. Never asserts; timings are not measured.

    python bench/coding.py [--out results.csv] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from rdcompress.codec import QuantizedTensor, RawTensor, encode_rdz

CHECKPOINT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "checkpoints" / (
    "resnet20-12fca82f.th")


def quantile_quantize(weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n,) weights -> (k,) codebook (bin means of k equal-mass bins), (n,) indices."""
    edges = np.quantile(weights, np.linspace(0, 1, k + 1)[1:-1])  # (k-1,)
    indices = np.searchsorted(edges, weights)  # (n,) in [0, k)
    sums = np.bincount(indices, weights=weights, minlength=k)
    counts = np.maximum(np.bincount(indices, minlength=k), 1)
    return (sums / counts).astype(np.float32), indices


def compress_state(state: dict[str, np.ndarray], k: int, prune: float) -> list:
    tensors = []
    for name, array in state.items():
        if not (name.endswith("weight") and array.ndim >= 2):
            tensors.append(RawTensor(name, array))
            continue
        flat = array.reshape(-1).astype(np.float32)
        mask = None
        if prune > 0:
            mask = np.abs(flat) > np.quantile(np.abs(flat), prune)
        kept = flat if mask is None else flat[mask]
        codebook, indices = quantile_quantize(kept, k)
        tensors.append(QuantizedTensor(name, array.shape, "float32", codebook, indices, mask))
    return tensors


def sources(quick: bool) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    out = {
        "gaussian 512x512": {"fc.weight": rng.standard_normal((512, 512)).astype(np.float32),
                             "fc.bias": rng.standard_normal(512).astype(np.float32)},
        "laplace 256x1152": {"conv.weight": rng.laplace(size=(256, 128, 3, 3)).astype(
            np.float32)},
    }
    if quick:
        return out
    try:
        import torch

        from rdcompress.models import build

        torch.manual_seed(0)
        model = build("mnist-mlp")
        out["mnist-mlp (init)"] = {n: t.detach().numpy() for n, t in model.state_dict().items()}
    except Exception as error:  # the zoo is optional here; say why it is skipped
        print(f"# mnist-mlp skipped: {error}", file=sys.stderr)
    if CHECKPOINT.exists():
        from rdcompress.models.loading import load_state

        out["resnet20 (trained)"] = {n: t.numpy() for n, t in load_state(CHECKPOINT).items()}
    else:
        print(f"# resnet20 skipped: {CHECKPOINT} absent", file=sys.stderr)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="also write the rows as CSV")
    parser.add_argument("--quick", action="store_true", help="synthetic sources, fewer k")
    args = parser.parse_args(argv)
    ks = (4, 16) if args.quick else (4, 8, 16, 32, 64)
    rows = []
    header = (f"{'source':<20} {'k':>3} {'prune':>5} {'weights':>8} {'bound B':>10} "
              f"{'ANS B':>9} {'ANS/bd':>7} {'Huff B':>9} {'Huff/bd':>7} {'ratio':>7} "
              f"{'paper':>7} {'positions':<12}")
    print(header)
    print("-" * len(header))
    for source, state in sources(args.quick).items():
        for k in ks:
            for prune in (0.0, 0.5, 0.9):
                tensors = compress_state(state, k, prune)
                manifest = {"method": "bench-quantile", "settings": {"k": k, "prune": prune}}
                ans_bytes, ans = encode_rdz(tensors, manifest, "ans")
                huff_bytes, huff = encode_rdz(tensors, manifest, "huffman")
                methods = sorted({t.position_method for t in ans.tensors if t.position_method})
                row = {
                    "source": source, "k": k, "prune": prune, "weights": ans.numel,
                    "bound_bytes": round(ans.entropy_bound_bytes, 1),
                    "ans_bytes": len(ans_bytes), "ans_over_bound": ans.coding_overhead,
                    "huffman_bytes": len(huff_bytes), "huffman_over_bound": huff.coding_overhead,
                    "ratio_ans": ans.ratio, "paper_ratio": ans.paper_ratio,
                    "position_methods": "+".join(methods) or "-",
                }
                rows.append(row)
                print(f"{source:<20} {k:>3} {prune:>5.2f} {ans.numel:>8} "
                      f"{row['bound_bytes']:>10.1f} {len(ans_bytes):>9} "
                      f"{ans.coding_overhead:>7.4f} {len(huff_bytes):>9} "
                      f"{huff.coding_overhead:>7.4f} {ans.ratio:>7.2f} {ans.paper_ratio:>7.2f} "
                      f"{row['position_methods']:<12}")
    worst = max(rows, key=lambda r: r["ans_over_bound"])
    print(f"\nworst ANS file/bound: {worst['ans_over_bound']:.4f} ({worst['source']}, "
          f"k={worst['k']}, prune={worst['prune']}); worst Huffman: "
          f"{max(r['huffman_over_bound'] for r in rows):.4f}")
    if args.out:
        with open(args.out, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
