"""Allocation across layers against brute force: hulls, the Lagrangian theorem, the exact DP,
the greedy finish and its gap, the dual problem, and every refusal."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rdcompress.errors import ConfigError
from rdcompress.kernels import (
    allocate_at_slope,
    allocate_to_budget,
    allocate_to_distortion,
    lagrangian_path,
    lower_convex_hull,
    prepare_menus,
)

FAST = settings(max_examples=100, deadline=None)
# Small integers: ties, duplicates, equal rates and collinear points are frequent.
INT_POINTS = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=5)
FLOAT = st.floats(0, 100, allow_nan=False, allow_infinity=False, width=32)
FLOAT_POINTS = st.lists(st.tuples(FLOAT, FLOAT), min_size=1, max_size=5)


def _menus(points_per_layer):
    return [(np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float))
            for pts in points_per_layer]


def _brute(menus, fixed=0.0):
    """Every combination: (choices (N, layers), total rate (N,), total distortion (N,)), summed
    as the kernel sums (correctly rounded, fixed bytes included)."""
    combos = np.array(list(itertools.product(*[range(r.size) for r, _ in menus])))
    rates = np.array([math.fsum([fixed, *(r[j] for (r, _), j in zip(menus, c, strict=True))])
                      for c in combos])
    dists = np.array([math.fsum(d[j] for (_, d), j in zip(menus, c, strict=True)) for c in combos])
    return combos, rates, dists


def _naive_hull(r, d):
    """O(n²), exact: p is on the hull iff undominated, first of its duplicates, and some λ ≥ 0
    makes D + λR at p no larger than at every other point."""
    fr, fd = [Fraction(float(x)) for x in r], [Fraction(float(x)) for x in d]
    keep = set()
    for p in range(len(fr)):
        if any((fr[q] <= fr[p] and fd[q] <= fd[p]) and ((fr[q], fd[q]) != (fr[p], fd[p]) or q < p)
               for q in range(len(fr)) if q != p):
            continue
        lo = max([(fd[p] - fd[q]) / (fr[q] - fr[p]) for q in range(len(fr)) if fr[q] > fr[p]]
                 + [Fraction(0)])
        his = [(fd[q] - fd[p]) / (fr[p] - fr[q]) for q in range(len(fr)) if fr[q] < fr[p]]
        if not his or lo <= min(his):
            keep.add(p)
    return keep


def _budget(data, menus):
    lo = math.fsum(r.min() for r, _ in menus)  # as the kernel sums: correctly rounded
    hi = math.fsum(r.max() for r, _ in menus)
    return data.draw(st.integers(int(math.floor(lo)), int(math.ceil(hi)) + 2).filter(
        lambda b: b >= lo), label="budget")


# ---- lower convex hull ------------------------------------------------------------------------


@FAST
@given(st.one_of(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1,
                          max_size=12),
                 st.lists(st.tuples(FLOAT, FLOAT), min_size=1, max_size=12)))
@example([(0, 6), (1, 4), (2, 2), (3, 0), (2, 5), (1, 4)])  # collinear, duplicate, dominated
def test_hull_matches_naive_exact_check(points):
    r, d = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    hull = lower_convex_hull(r, d)
    assert set(hull.index.tolist()) == _naive_hull(r, d)
    assert np.array_equal(hull.rates, r[hull.index]) and np.array_equal(hull.distortions,
                                                                        d[hull.index])
    assert (np.diff(hull.rates) > 0).all() and (np.diff(hull.distortions) < 0).all()
    assert (hull.slopes > 0).all() and (np.diff(hull.slopes) <= 0).all()
    np.testing.assert_allclose(hull.slopes, -np.diff(hull.distortions) / np.diff(hull.rates),
                               rtol=1e-12)


@FAST
@given(st.lists(st.one_of(INT_POINTS, FLOAT_POINTS), min_size=1, max_size=6))
def test_hulls_of_many_layers_at_once_match_naive(points):
    # prepare_menus runs the chord tests on all layers together: no triple may span two layers.
    menus = _menus(points)
    for hull, (r, d) in zip(prepare_menus(menus).hulls, menus, strict=True):
        assert set(hull.index.tolist()) == _naive_hull(r, d)
        assert set(hull.undominated.tolist()) >= set(hull.index.tolist())


def test_hull_by_hand_unsorted_duplicates_collinear():
    # (3, 2.5) is dominated by (2, 1); (1, 6) by (1, 5); (0, 10) appears twice (first kept);
    # (4, 0.5), (6, 0.0) lie on one line from (2, 1) with slope 0.25: collinear points stay.
    r = [3, 2, 1, 0, 1, 0, 4, 6, 5]
    d = [2.5, 1, 6, 10, 5, 10, 0.5, 0.0, 0.9]
    hull = lower_convex_hull(r, d)
    assert hull.index.tolist() == [3, 4, 1, 6, 7]
    assert hull.slopes.tolist() == [5.0, 4.0, 0.25, 0.25]


def test_hull_single_point_and_all_equal():
    hull = lower_convex_hull([7], [3])
    assert hull.index.tolist() == [0] and hull.slopes.size == 0
    assert lower_convex_hull([2, 2, 2], [1, 1, 1]).index.tolist() == [0]


def test_hull_drops_a_point_above_the_chord_by_one_ulp_and_keeps_an_exact_line():
    # Exact arithmetic: (1, 1 + ulp) is above the chord (0, 2)-(2, 0); (1, 1) is on it.
    above = np.nextafter(1.0, 2.0)
    assert lower_convex_hull([0, 1, 2], [2, above, 0]).index.tolist() == [0, 2]
    assert lower_convex_hull([0, 1, 2], [2, 1.0, 0]).index.tolist() == [0, 1, 2]
    assert lower_convex_hull([0, 0.1, 0.3], [0.3, 0.2, 0.0]).index.tolist() == [0, 2]  # 0.1+0.2
    # Here the float determinant is exactly 0 but the exact one is negative: the middle point
    # lies above the chord, so only the exact fallback drops it.
    r, d = [0.0, 178983.07539438255, 214844.0], [3.340877029635009, 0.5576461957344879, 0.0]
    assert lower_convex_hull(r, d).index.tolist() == [0, 2]


# ---- the Lagrangian solution -------------------------------------------------------------------


@FAST
@given(st.lists(st.one_of(INT_POINTS, FLOAT_POINTS), min_size=1, max_size=4),
       st.floats(0, 20, allow_nan=False))
def test_slope_solution_is_the_argmin_and_optimal_at_its_own_rate(points, lam):
    menus = _menus(points)
    alloc = allocate_at_slope(menus, lam)
    _, rates, dists = _brute(menus)
    lagr = dists + lam * rates
    assert alloc.distortion + lam * alloc.rate == pytest.approx(lagr.min(), rel=1e-12, abs=1e-9)
    # Everett's theorem: nothing with no more rate has less distortion.
    assert alloc.distortion == pytest.approx(dists[rates <= alloc.rate].min(), rel=1e-12,
                                             abs=1e-9)


@FAST
@given(st.lists(INT_POINTS, min_size=1, max_size=4), st.integers(0, 60).map(lambda m: m / 4))
def test_slope_ties_go_to_fewer_bytes(points, lam):
    # Integer points and λ a multiple of 1/4: every sum is exact, so ties are real ties.
    menus = _menus(points)
    alloc = allocate_at_slope(menus, lam)
    _, rates, dists = _brute(menus)
    lagr = dists + lam * rates
    assert alloc.distortion + lam * alloc.rate == lagr.min()
    assert alloc.rate == rates[lagr == lagr.min()].min()


@FAST
@given(st.lists(INT_POINTS, min_size=1, max_size=4))
def test_path_points_are_optimal_and_match_the_budget_solver(points):
    menus = _menus(points)
    slopes, path_rates, path_dists = lagrangian_path(menus, fixed_bytes=2)
    _, rates, dists = _brute(menus, 2.0)
    assert (np.diff(path_rates) > 0).all() and (np.diff(path_dists) < 0).all()
    assert (np.diff(slopes) <= 0).all() and slopes[-1] == 0
    assert path_rates[0] == rates.min() and path_dists[-1] == dists.min()
    for rate, dist in zip(path_rates, path_dists, strict=True):
        assert dist == dists[rates <= rate].min()    # integers: exact
        lagr = allocate_to_budget(menus, rate, fixed_bytes=2, method="lagrangian")
        assert (lagr.rate, lagr.distortion) == (rate, dist)


def test_slope_extremes_pick_cheapest_and_most_accurate():
    menus = _menus([[(4, 1), (2, 5), (2, 3), (9, 1)], [(0, 7), (1, 7), (3, 0)]])
    assert allocate_at_slope(menus, math.inf).choice.tolist() == [2, 0]
    assert allocate_at_slope(menus, 0.0).choice.tolist() == [0, 2]


@FAST
@given(st.lists(st.one_of(INT_POINTS, FLOAT_POINTS), min_size=1, max_size=4), st.data())
def test_budget_lagrangian_is_optimal_among_no_more_rate_and_bound_holds(points, data):
    menus = _menus(points)
    budget = _budget(data, menus)
    alloc = allocate_to_budget(menus, budget, method="lagrangian")
    _, rates, dists = _brute(menus)
    assert alloc.rate <= budget
    assert alloc.distortion == pytest.approx(dists[rates <= alloc.rate].min(), rel=1e-12, abs=1e-9)
    optimum = dists[rates <= budget].min()
    assert alloc.lower_bound <= optimum + 1e-9 * max(1.0, optimum) <= alloc.distortion + 1e-6


# ---- exact DP and greedy finish against brute force ---------------------------------------------


@FAST
@given(st.lists(INT_POINTS, min_size=1, max_size=4), st.data(), st.integers(0, 3))
def test_budget_exact_equals_brute_force_with_fewest_bytes(points, data, fixed):
    menus = _menus(points)
    budget = _budget(data, menus) + fixed
    alloc = allocate_to_budget(menus, budget, fixed_bytes=fixed, method="exact")
    combos, rates, dists = _brute(menus)
    feasible = rates + fixed <= budget
    best = dists[feasible].min()
    assert alloc.distortion == best                         # integers: exact
    assert alloc.rate == rates[feasible & (dists == best)].min() + fixed
    assert alloc.rate == math.fsum([fixed, *alloc.rates])
    assert alloc.rates.tolist() == [r[j] for (r, _), j in zip(menus, alloc.choice, strict=True)]


@FAST
@given(st.lists(st.one_of(INT_POINTS, FLOAT_POINTS), min_size=1, max_size=4), st.data())
def test_budget_greedy_never_worse_gap_within_next_step(points, data):
    menus = _menus(points)
    fixed = data.draw(st.sampled_from([0.0, 0.5, 3.0]), label="fixed")
    budget = _budget(data, menus) + fixed
    lagr = allocate_to_budget(menus, budget, fixed_bytes=fixed, method="lagrangian")
    greedy = allocate_to_budget(menus, budget, fixed_bytes=fixed, method="greedy")
    _, rates, dists = _brute(menus, fixed)
    optimum = dists[rates <= budget].min()
    assert greedy.rate <= budget and greedy.distortion <= lagr.distortion
    assert greedy.lower_bound == lagr.lower_bound <= optimum + 1e-9 * max(1.0, optimum)
    # Gap ≤ Lagrangian gap ≤ the next step's gain ≤ the largest single hull step.
    pm = prepare_menus(menus)
    next_gain = lagr.distortion - lagr.lower_bound
    largest = max(np.max(-np.diff(h.distortions), initial=0.0) for h in pm.hulls)
    assert greedy.distortion - optimum <= next_gain + 1e-9 <= largest + 2e-9
    # No single move to any menu point that lowers distortion fits in the bytes left.
    for (r, d), j in zip(menus, greedy.choice, strict=True):
        assert not ((d < d[j]) & (r - r[j] <= budget - greedy.rate)).any()


def test_greedy_exchange_gives_back_a_step_to_afford_a_bigger_one():
    # Path: A's step (6 B, saves 61, slope 10.2) then B's (10 B, saves 100, slope 10). With 11 B
    # the Lagrangian takes A only; no single move fits; A back + B up fits and saves 39 more.
    menus = _menus([[(0, 61), (6, 0)], [(0, 100), (10, 0)]])
    lagr = allocate_to_budget(menus, 11, method="lagrangian")
    greedy = allocate_to_budget(menus, 11)
    assert lagr.choice.tolist() == [1, 0] and lagr.distortion == 100 and lagr.slope == 10
    assert greedy.choice.tolist() == [0, 1] and greedy.distortion == 61 and greedy.rate == 10
    assert greedy.lower_bound == pytest.approx(100 - 10 * 5)
    assert allocate_to_budget(menus, 11, method="exact").distortion == 61


def test_greedy_finish_reaches_a_point_off_the_hull():
    # (4, 6.5) lies above A's chord (0, 10)-(10, 0), so no Lagrangian picks it, yet with 5 bytes
    # it is the optimum; the hull-only pass finds no move that fits, the second pass finds it.
    menus = _menus([[(0, 10), (4, 6.5), (10, 0)], [(0, 1), (100, 0)]])
    assert lower_convex_hull(*menus[0]).index.tolist() == [0, 2]
    assert allocate_to_budget(menus, 5, method="lagrangian").distortion == 11
    greedy = allocate_to_budget(menus, 5)
    assert greedy.choice.tolist() == [1, 0] and greedy.distortion == 7.5
    assert greedy.lower_bound == pytest.approx(11 - 1 * 5)  # λ = 1, A's next step
    dual = allocate_to_distortion(menus, 8)                  # the dual sheds 6 bytes the same way
    assert dual.choice.tolist() == [1, 0] and dual.rate == 4


def test_budget_by_hand():
    menus = _menus([[(0, 10), (1, 5), (2, 3), (3, 2.5)], [(0, 8), (2, 3), (4, 1)], [(5, 0.5)]])
    # Path slopes: 5 (A), 2.5 (B), 2 (A), 1 (B), 0.5 (A); fixed layer C costs 5 B.
    lagr = allocate_to_budget(menus, 7, method="lagrangian")
    assert lagr.choice.tolist() == [1, 0, 0] and (lagr.rate, lagr.distortion) == (6, 13.5)
    assert (lagr.slope, lagr.lower_bound) == (2.5, 11.0)   # 13.5 − 2.5 · 1 byte left
    greedy = allocate_to_budget(menus, 7)
    assert greedy.choice.tolist() == [2, 0, 0] and greedy.distortion == 11.5
    assert allocate_to_budget(menus, 100).choice.tolist() == [3, 2, 0]


# ---- the dual: smallest rate within a distortion target ----------------------------------------


@FAST
@given(st.lists(INT_POINTS, min_size=1, max_size=4), st.data())
def test_distortion_target_all_methods_against_brute_force(points, data):
    menus = _menus(points)
    combos, rates, dists = _brute(menus)
    target = data.draw(st.integers(int(dists.min()), int(dists.max()) + 2), label="target")
    best = rates[dists <= target].min()
    exact = allocate_to_distortion(menus, target, method="exact")
    assert exact.rate == best and exact.distortion <= target
    lagr = allocate_to_distortion(menus, target, method="lagrangian")
    assert lagr.distortion <= target
    assert lagr.rate == rates[dists <= lagr.distortion].min()      # Everett, the dual way
    greedy = allocate_to_distortion(menus, target)
    assert greedy.distortion <= target and best <= greedy.rate <= lagr.rate
    assert lagr.lower_bound <= best + 1e-9


# ---- large menus -------------------------------------------------------------------------------


def _synthetic(layers=50, points=300, seed=0):
    """Quantization-like menus: rate ~ n·log2(k)/8 + codebook, distortion ~ σ² 4^(−log2 k)."""
    rng = np.random.default_rng(seed)
    menus = []
    for _ in range(layers):
        n, var = rng.integers(1_000, 100_000), rng.lognormal(0, 1)
        bits = np.sort(rng.uniform(0, 8, points))
        rates = np.ceil(n * bits / 8 + 4 * 2 ** bits)
        dists = var * n * 4.0 ** -bits * rng.uniform(0.8, 1.2, points)
        menus.append((rates, dists))
    return menus


def test_large_menus_are_consistent_and_reuse_prepared():
    menus = _synthetic()
    pm = prepare_menus(menus)
    budget = 0.3 * sum(r.max() for r, _ in menus)
    lagr = allocate_to_budget(pm, budget, method="lagrangian")
    greedy = allocate_to_budget(pm, budget)
    assert greedy.rate <= budget and lagr.lower_bound <= greedy.distortion <= lagr.distortion
    assert allocate_to_budget(menus, budget).choice.tolist() == greedy.choice.tolist()
    at = allocate_at_slope(pm, lagr.slope)
    assert at.rate <= lagr.rate  # ties go to fewer bytes, the prefix may hold some tied steps
    dual = allocate_to_distortion(pm, greedy.distortion)
    assert dual.distortion <= greedy.distortion and dual.lower_bound <= dual.rate
    assert dual.lower_bound <= greedy.rate  # greedy's point meets that target too


# ---- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("menu, match", [
    (([0, 1], [1.0, math.nan]), r"distortions holds nan at position 1"),
    (([0, math.inf], [1.0, 0.0]), r"rates holds inf at position 1"),
    (([0, -2], [1.0, 0.0]), r"rate -2 is negative"),
    (([0, 1], [1.0, -0.5]), r"distortion -0.5 is negative"),
    (([0, 1, 2], [1.0, 0.0]), r"shape \(3,\) and distortions \(2,\)"),
    (([], []), r"length ≥ 1"),
    (([[0, 1]], [[1, 0]]), r"1-D"),
    ((["a"], [1]), r"must be numbers"),
])
def test_bad_menus_are_refused(menu, match):
    with pytest.raises(ConfigError, match=match):
        lower_convex_hull(*menu)
    with pytest.raises(ConfigError, match=r"menus\[1\]"):
        allocate_to_budget([([0], [0]), menu], 10)


def test_bad_arguments_are_refused():
    menus = _menus([[(3, 2), (5, 1)], [(4, 1), (8, 0)]])
    with pytest.raises(ConfigError, match=r"budget_bytes=8 .* smallest achievable total 9 bytes"):
        allocate_to_budget(menus, 8, fixed_bytes=2)
    allocate_to_budget(menus, 9, fixed_bytes=2)  # exactly the smallest is fine
    with pytest.raises(ConfigError, match=r"max_distortion=0.5 .* smallest achievable .* 1"):
        allocate_to_distortion(menus, 0.5)
    with pytest.raises(ConfigError, match=r"method='knapsack' is unknown"):
        allocate_to_budget(menus, 20, method="knapsack")
    with pytest.raises(ConfigError, match=r"lam=-1 must be a finite number ≥ 0 \(or inf\)"):
        allocate_at_slope(menus, -1)
    with pytest.raises(ConfigError, match=r"fixed_bytes=nan"):
        allocate_to_budget(menus, 20, fixed_bytes=math.nan)
    with pytest.raises(ConfigError, match=r"menus is empty"):
        allocate_to_budget([], 20)
    with pytest.raises(ConfigError, match=r"menus\[0\] is int"):
        allocate_to_budget([3], 20)
    with pytest.raises(ConfigError, match=r"integer rates .* menus\[1\] has rate 4.5"):
        allocate_to_budget(_menus([[(3, 2)], [(4.5, 1), (8, 0)]]), 20, method="exact")
    with pytest.raises(ConfigError, match=r"above max_dp_work=100"):
        allocate_to_budget(_menus([[(0, 2), (1000, 1)], [(0, 1), (999, 0)]]), 2000,
                           method="exact", max_dp_work=100)
