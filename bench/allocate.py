"""Allocation across layers: speed on large menus, quality against brute force and the exact DP.

    nice -n 5 python bench/allocate.py

1. Quantization-like menus, 50 layers × 300 points (rate ≈ n·log2(k)/8 + codebook bytes,
   distortion ≈ σ² n 4^(−log2 k) with ±20 % noise): time to prepare (validate, hulls, the
   Lagrangian path) and to allocate once prepared, median of repeats.
2. Small problems (4 layers × 5 points, integer bytes): brute force over all 625 combinations
   vs the exact knapsack DP and the greedy finish; time ratios and gaps to the optimum.
3. Medium problems (20 layers × 40 points, a few thousand bytes per layer): exact DP vs greedy;
   time ratio, how often greedy is optimal, and its gap relative to the optimum and to the
   Lagrangian gap it started from. Never asserts on time.
"""

from __future__ import annotations

import itertools
import statistics
import time

import numpy as np

from rdcompress.kernels import allocate_to_budget, allocate_to_distortion, prepare_menus


def _quantization_like(rng, layers, points, max_weights):
    menus = []
    for _ in range(layers):
        n, var = int(rng.integers(max_weights // 100, max_weights)), rng.lognormal(0, 1)
        bits = np.sort(rng.uniform(0, 8, points))
        rates = np.ceil(n * bits / 8 + 4 * 2 ** bits)
        menus.append((rates, var * n * 4.0 ** -bits * rng.uniform(0.8, 1.2, points)))
    return menus


def _median_ms(fn, repeats=7):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def speed() -> None:
    menus = _quantization_like(np.random.default_rng(0), 50, 300, 100_000)
    pm = prepare_menus(menus)
    budget = 0.3 * sum(r.max() for r, _ in menus)
    target = allocate_to_budget(pm, budget).distortion * 1.5
    print(f"50 layers x 300 points: {pm.cand.rates.size} undominated, {pm.hull.rates.size} "
          f"on the hulls, {pm.step_slope.size} Lagrangian breakpoints")
    rows = [("prepare_menus", lambda: prepare_menus(menus)),
            ("budget, lagrangian", lambda: allocate_to_budget(pm, budget, method="lagrangian")),
            ("budget, greedy", lambda: allocate_to_budget(pm, budget)),
            ("distortion, greedy", lambda: allocate_to_distortion(pm, target)),
            ("budget, greedy, unprepared", lambda: allocate_to_budget(menus, budget))]
    for name, fn in rows:
        print(f"  {name:<28} {_median_ms(fn):8.2f} ms")


def small(cases=200) -> None:
    rng = np.random.default_rng(1)
    t_brute = t_exact = t_greedy = 0.0
    exact_ok = greedy_ok = lagr_ok = 0
    for _ in range(cases):
        menus = [(rng.integers(0, 40, 5).astype(float), rng.uniform(0, 10, 5)) for _ in range(4)]
        budget = rng.uniform(sum(r.min() for r, _ in menus), sum(r.max() for r, _ in menus))
        start = time.perf_counter()
        best = min(sum(d[j] for (_, d), j in zip(menus, c, strict=True))
                   for c in itertools.product(range(5), repeat=4)
                   if sum(r[j] for (r, _), j in zip(menus, c, strict=True)) <= budget)
        t_brute += time.perf_counter() - start
        start = time.perf_counter()
        exact = allocate_to_budget(menus, budget, method="exact")
        t_exact += time.perf_counter() - start
        start = time.perf_counter()
        greedy = allocate_to_budget(menus, budget)
        t_greedy += time.perf_counter() - start
        lagr = allocate_to_budget(menus, budget, method="lagrangian")
        exact_ok += abs(exact.distortion - best) <= 1e-9 * max(1.0, best)
        greedy_ok += abs(greedy.distortion - best) <= 1e-9 * max(1.0, best)
        lagr_ok += abs(lagr.distortion - best) <= 1e-9 * max(1.0, best)
    print(f"{cases} small problems (4 layers x 5 points): optimal in {exact_ok} (exact DP), "
          f"{greedy_ok} (greedy), {lagr_ok} (lagrangian alone)")
    print(f"  time brute force / exact DP = {t_brute / t_exact:.1f}x, "
          f"brute force / greedy = {t_brute / t_greedy:.1f}x")


def medium(cases=20) -> None:
    rng = np.random.default_rng(2)
    t_exact = t_greedy = 0.0
    same, rel_gaps, closed = 0, [], []
    for _ in range(cases):
        menus = _quantization_like(rng, 20, 40, 4_000)
        pm = prepare_menus(menus)
        budget = rng.uniform(0.1, 0.6) * sum(r.max() for r, _ in menus)
        start = time.perf_counter()
        exact = allocate_to_budget(pm, budget, method="exact", max_dp_work=1e9)
        t_exact += time.perf_counter() - start
        start = time.perf_counter()
        greedy = allocate_to_budget(pm, budget)
        t_greedy += time.perf_counter() - start
        lagr = allocate_to_budget(pm, budget, method="lagrangian")
        same += greedy.distortion <= exact.distortion * (1 + 1e-12)
        rel_gaps.append(greedy.distortion / exact.distortion - 1)
        if lagr.distortion > exact.distortion:
            closed.append((lagr.distortion - greedy.distortion) / (lagr.distortion
                                                                    - exact.distortion))
    print(f"{cases} medium problems (20 layers x 40 points): greedy optimal in {same}; "
          f"greedy/exact distortion - 1: median {statistics.median(rel_gaps):.2e}, "
          f"max {max(rel_gaps):.2e}")
    if closed:
        print(f"  share of the Lagrangian's gap that greedy closes: median "
              f"{statistics.median(closed):.3f}, min {min(closed):.3f}")
    print(f"  time exact DP / greedy = {t_exact / t_greedy:.0f}x "
          f"(exact {1e3 * t_exact / cases:.0f} ms, greedy {1e3 * t_greedy / cases:.2f} ms "
          "per problem)")


def main() -> None:
    speed()
    small()
    medium()


if __name__ == "__main__":
    main()
