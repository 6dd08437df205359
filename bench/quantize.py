"""Quantizer benchmark: objective and time of the optimal solver, weighted Lloyd and
scikit-learn's KMeans(sample_weight), side by side in one run.

Layers: every weight matrix of the MNIST net (mnist-mlp, random init unless --mnist-weights),
every conv/linear weight of ResNet-20 (the shared CIFAR-10 checkpoint), and a synthetic layer
of 1M Laplace weights. Importances: random positive (exponential), seeded, so every quantizer
faces a genuinely weighted problem. k = 4, 16, 64. Last, the quartic objective (H > 0) on the
1M layer: optimal_quantize(H=...) against quartic k-means (Algorithm 2).

Fairness: every timing is the minimum of --repeat runs (default 3) after one warm-up call;
scikit-learn runs with n_init=1 from the same quantile initialization as weighted Lloyd
(c_j = quantile (j + ½)/k of w), its default tol and max_iter; objectives are all evaluated
the same way, Σ I (w − c[label])² in float64.

    python bench/quantize.py [--ks 4 16 64] [--repeat 3] [--only-1m] [--no-exact-1m]
                             [--json out.json]

Prints times, objectives and ratios (sklearn time / ours, objective / ours); never asserts.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from rdcompress.quantize import optimal_quantize, quartic_kmeans, weighted_lloyd

RESNET20 = Path(__file__).resolve().parents[2] / "shared/data/checkpoints/resnet20-12fca82f.th"


def quantile_init(w: np.ndarray, k: int) -> np.ndarray:
    return np.quantile(w, (np.arange(k) + 0.5) / k)


def sklearn_kmeans(w: np.ndarray, I: np.ndarray, k: int) -> float:
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=1, init=quantile_init(w, k).reshape(-1, 1))
    labels = model.fit_predict(w.reshape(-1, 1), sample_weight=I)
    centers = model.cluster_centers_.reshape(-1)
    return float(np.sum(I * (w - centers[labels]) ** 2))


def timed(fn, repeat: int = 1):
    """(value of the last call, the minimum seconds over ``repeat`` calls)."""
    best, value = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return value, best


def measure(name: str, w: np.ndarray, I: np.ndarray, k: int, exact: bool, repeat: int) -> dict:
    distinct = np.unique(w).size
    if k > distinct:
        return {}
    row = {"layer": name, "n": w.size, "k": k, "repeat": repeat}
    opt, row["t_optimal"] = timed(lambda: optimal_quantize(w, I, k), repeat)
    row["optimal"] = opt.objective
    lloyd, row["t_lloyd"] = timed(lambda: weighted_lloyd(w, I, k), repeat)
    row["lloyd"] = lloyd.objective
    row["sklearn"], row["t_sklearn"] = timed(lambda: sklearn_kmeans(w, I, k), repeat)
    if exact:
        ex, row["t_exact"] = timed(lambda: optimal_quantize(w, I, k, exact_limit=None))
        row["exact"] = ex.objective
    return row


def model_layers(args) -> dict[str, dict[str, np.ndarray]]:
    import torch

    from rdcompress.models import build, load_model

    torch.manual_seed(0)
    if args.mnist_weights:
        mnist = load_model("mnist-mlp", weights=args.mnist_weights).module
    else:
        mnist = build("mnist-mlp")
    models = {"mnist-mlp": mnist}
    if RESNET20.is_file():
        models["resnet20"] = load_model("resnet20", weights=RESNET20).module
    else:
        print(f"(skipping ResNet-20: {RESNET20} not found)")
    return {
        model_name: {n: p.detach().double().numpy().reshape(-1)
                     for n, p in model.named_parameters() if p.ndim >= 2}
        for model_name, model in models.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--repeat", type=int, default=3, help="timings: min over this many runs")
    parser.add_argument("--mnist-weights", help="trained mnist-mlp weights (default: random)")
    parser.add_argument("--only-1m", action="store_true", help="skip the model layers")
    parser.add_argument("--no-exact-1m", action="store_true",
                        help="skip the exact DP on the 1M layer (about a minute at k=64)")
    parser.add_argument("--json", help="write every row here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    optimal_quantize(rng.normal(size=50_000), None, 4)  # warm-up (imports, allocator)
    if not args.only_1m:
        rows += model_tables(args, rng)
    w = rng.laplace(size=1_000_000).astype(np.float32).astype(np.float64)
    I = rng.exponential(size=w.size)
    print(f"\nsynthetic layer, n = 1M (float32 Laplace weights, exponential importances); "
          f"times: min of {args.repeat}\n"
          f"{'k':>3} {'t_fast s':>8} {'t_sk s':>7} {'sk/fast time':>12} {'obj fast':>12} "
          f"{'obj sklearn':>12} {'sk/fast obj':>11} {'lloyd/fast':>10} {'t_lloyd s':>9} "
          f"{'fast/exact':>10} {'t_exact s':>9}")
    for k in args.ks:
        row = measure("synthetic-1M", w, I, k, exact=not args.no_exact_1m, repeat=args.repeat)
        rows.append(row)
        gap = f"{row['optimal'] / row['exact']:10.7f}" if "exact" in row else f"{'-':>10}"
        t_exact = f"{row['t_exact']:9.2f}" if "t_exact" in row else f"{'-':>9}"
        print(f"{k:>3} {row['t_optimal']:8.3f} {row['t_sklearn']:7.3f} "
              f"{row['t_sklearn'] / row['t_optimal']:12.1f} {row['optimal']:12.6g} "
              f"{row['sklearn']:12.6g} {row['sklearn'] / row['optimal']:11.6f} "
              f"{row['lloyd'] / row['optimal']:10.6f} {row['t_lloyd']:9.3f} {gap} {t_exact}",
              flush=True)
    H = rng.exponential(size=w.size) * 10.0
    print(f"\nquartic objective Σ I (w−c)² + H (w−c)⁴ on the same layer (H exponential × 10):\n"
          f"{'k':>3} {'t_fast s':>8} {'t_quartic_km s':>14} {'km/fast time':>12} "
          f"{'obj fast':>12} {'obj quartic_km':>14} {'km/fast obj':>11}")
    for k in args.ks:
        fast, t_fast = timed(lambda k=k: optimal_quantize(w, I, k, H=H), args.repeat)
        km, t_km = timed(lambda k=k: quartic_kmeans(w, I, H, k), args.repeat)
        rows.append({"layer": "synthetic-1M-quartic", "n": w.size, "k": k, "t_optimal": t_fast,
                     "optimal": fast.objective, "t_quartic_kmeans": t_km,
                     "quartic_kmeans": km.objective, "repeat": args.repeat})
        print(f"{k:>3} {t_fast:8.3f} {t_km:14.3f} {t_km / t_fast:12.1f} {fast.objective:12.6g} "
              f"{km.objective:14.6g} {km.objective / fast.objective:11.6f}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


def model_tables(args, rng) -> list[dict]:
    rows = []
    print(f"{'model':<10} {'k':>3} {'layers':>6} {'opt<=lloyd':>10} {'lloyd/opt':>9} "
          f"{'sk/opt':>7} {'t_opt s':>8} {'t_lloyd s':>9} {'t_sk s':>7}")
    for model_name, layers in model_layers(args).items():
        for k in args.ks:
            group = []
            for name, w in layers.items():
                I = rng.exponential(size=w.size)
                row = measure(f"{model_name}/{name}", w, I, k, exact=False, repeat=args.repeat)
                if row:
                    group.append(row)
            rows += group
            total = {key: sum(r[key] for r in group) for key in
                     ("optimal", "lloyd", "sklearn", "t_optimal", "t_lloyd", "t_sklearn")}
            wins = sum(r["optimal"] <= r["lloyd"] * (1 + 1e-12) for r in group)
            print(f"{model_name:<10} {k:>3} {len(group):>6} {f'{wins}/{len(group)}':>10} "
                  f"{total['lloyd'] / total['optimal']:9.4f} "
                  f"{total['sklearn'] / total['optimal']:7.4f} {total['t_optimal']:8.2f} "
                  f"{total['t_lloyd']:9.2f} {total['t_sklearn']:7.2f}", flush=True)
    return rows


if __name__ == "__main__":
    main()
