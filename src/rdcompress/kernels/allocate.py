"""Rate–distortion allocation across layers: pick one candidate point per layer, pure and exact.

Layer i offers a menu of points (R_ij, D_ij): the coded bytes and predicted distortion of one
method/setting (quantization at some k, pruning at some kept fraction, keeping it raw, ...).
``allocate_to_budget`` minimises Σ_i D_i subject to fixed + Σ_i R_i ≤ budget;
``allocate_to_distortion`` minimises Σ_i R_i subject to Σ_i D_i ≤ target (the dual).

Water-filling. Theorem 2's optimal compressor codes every coordinate down to one common water
level μ: the distortion saved per bit is equal wherever bits are spent. Across layers the same
condition reads: at one slope λ ≥ 0 (λ is the water level) every layer independently takes
argmin_j D_ij + λ R_ij (``allocate_at_slope``). That point lies on the layer's lower convex hull
(``lower_convex_hull``), whose step slopes s = ΔD/ΔR play water-filling's breakpoints b_i: a layer
keeps buying bytes while its next step saves more than λ per byte, like a coordinate under water.

Exactness. Merging all layers' hull steps by decreasing slope gives the whole Lagrangian path at
once (every breakpoint λ, no bisection): each prefix is the argmin at λ = the next step's slope,
hence optimal among ALL combinations of menu points with no more total rate (Everett 1963;
Shoham & Gersho 1988). For a budget we take the longest prefix that fits; its dual value
D_prefix − λ·(budget − R_prefix) is the convex-hull relaxation, a lower bound on the optimum, so
every result states its gap. The leftover budget is then spent by a greedy local search
(``method="greedy"``: single moves and step-back-plus-move exchanges between layers, over hull
points, then over all undominated points) or exactly by a multiple-choice knapsack DP over all
menu points (``method="exact"``, integer rates, small problems).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from rdcompress.errors import ConfigError

METHODS = ("lagrangian", "greedy", "exact")
# Shewchuk's orient2d bound is (3 + 16ε)ε ≈ 3.3e-16 relative to |left| + |right|: a float
# determinant smaller than that may have the wrong sign, so it is recomputed exactly.
_ORIENT_ERR = 1e-15


@dataclass(frozen=True)
class Hull:
    """One layer's lower convex hull (collinear points kept), by increasing rate."""

    index: np.ndarray        # (h,) int: position of each hull point in the layer's menu
    rates: np.ndarray        # (h,) strictly increasing
    distortions: np.ndarray  # (h,) strictly decreasing
    slopes: np.ndarray       # (h-1,) distortion saved per byte of each step: > 0, non-increasing
    undominated: np.ndarray  # (u,) int: menu positions of all undominated points, by rate


@dataclass(frozen=True)
class Allocation:
    """One choice per layer and what it costs."""

    choice: np.ndarray       # (layers,) int: chosen position in each layer's menu
    rates: np.ndarray        # (layers,) bytes of each chosen point
    distortions: np.ndarray  # (layers,) distortion of each chosen point
    rate: float              # fixed_bytes + Σ rates
    distortion: float        # Σ distortions
    slope: float             # λ (water level) of the Lagrangian solution this one started from
    lower_bound: float       # no allocation does better: on distortion (budget), on rate (target)
    method: str              # "lagrangian", "greedy" or "exact"


class _Points(NamedTuple):
    """Per-layer point sets concatenated: layer i owns [offset[i], offset[i+1]), by rate."""

    offset: np.ndarray    # (layers+1,)
    menu_pos: np.ndarray  # (P,) menu position of each point
    rates: np.ndarray     # (P,)
    dists: np.ndarray     # (P,)
    layer: np.ndarray     # (P,)


def _points(rates, dists, positions) -> _Points:
    sizes = [p.size for p in positions]
    pairs = list(zip(rates, dists, positions, strict=True))
    return _Points(np.concatenate([[0], np.cumsum(sizes)]), np.concatenate(positions),
                   np.concatenate([r[p] for r, _, p in pairs]),
                   np.concatenate([d[p] for _, d, p in pairs]),
                   np.repeat(np.arange(len(sizes)), sizes))


@dataclass(frozen=True)
class PreparedMenus:
    """Validated menus, their hulls and the Lagrangian path; reuse it across many calls."""

    rates: tuple[np.ndarray, ...]        # per layer (points,)
    distortions: tuple[np.ndarray, ...]  # per layer (points,)
    hulls: tuple[Hull, ...]
    hull: _Points            # every layer's hull points
    cand: _Points            # every layer's undominated points (the hull is a subsequence)
    hull_cand: np.ndarray    # (H,) each hull point's position among its layer's candidates
    step_layer: np.ndarray   # (S,) the Lagrangian path: every hull step, by decreasing slope
    step_rate: np.ndarray    # (S,) bytes the step adds
    step_gain: np.ndarray    # (S,) distortion the step saves
    step_slope: np.ndarray   # (S,) gain / rate, non-increasing


def _menu_arrays(rates, distortions, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        r, d = np.asarray(rates, dtype=float), np.asarray(distortions, dtype=float)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: rates and distortions must be numbers ({err})") from None
    if r.ndim != 1 or r.shape != d.shape or r.size == 0:
        raise ConfigError(f"{where}: rates has shape {r.shape} and distortions {d.shape}; expected "
                          "two 1-D arrays of one equal length ≥ 1 (one entry per candidate)")
    for name, a in (("rates", r), ("distortions", d)):
        if not np.isfinite(a).all():
            raise ConfigError(f"{where}: {name} holds {a[~np.isfinite(a)][0]} at position "
                              f"{int(np.flatnonzero(~np.isfinite(a))[0])}; every candidate needs "
                              "a finite rate and distortion: drop or fix that candidate")
    for name, a in (("rate", r), ("distortion", d)):
        if (a < 0).any():
            raise ConfigError(f"{where}: {name} {a.min():g} is negative; rates (coded bytes) and "
                              "distortions (weighted squared errors, KL) are ≥ 0")
    return r, d


def _orient(ra, da, rb, db, rc, dc) -> np.ndarray:
    """Sign of (b − a) × (c − a) per triple, exact: > 0 when b lies below the chord a–c."""
    left, right = (rb - ra) * (dc - da), (rc - ra) * (db - da)
    sign = np.sign(left - right)
    for i in np.flatnonzero(np.abs(left - right) <= _ORIENT_ERR * (np.abs(left) + np.abs(right))):
        f = [Fraction(float(v[i])) for v in (ra, da, rb, db, rc, dc)]
        exact = (f[2] - f[0]) * (f[5] - f[1]) - (f[4] - f[0]) * (f[3] - f[1])
        sign[i] = (exact > 0) - (exact < 0)
    return sign


def _hulls(rates: list[np.ndarray], dists: list[np.ndarray]) -> tuple[Hull, ...]:
    """Every layer's hull; the chord tests run on all layers' points at once."""
    undominated = []
    for r, d in zip(rates, dists, strict=True):
        order = np.lexsort((np.arange(r.size), d, r))   # by rate, then distortion, then position
        d_sorted = d[order]
        pareto = np.ones(r.size, bool)                  # drops dominated points and duplicates
        pareto[1:] = d_sorted[1:] < np.minimum.accumulate(d_sorted)[:-1]
        undominated.append(order[pareto])
    pts = _points(rates, dists, undominated)
    alive = np.arange(pts.layer.size)
    while True:     # drop every point strictly above the chord of its neighbours, repeat
        lay, hr, hd = pts.layer[alive], pts.rates[alive], pts.dists[alive]
        mid = 1 + np.flatnonzero((lay[:-2] == lay[1:-1]) & (lay[1:-1] == lay[2:]))
        above = _orient(hr[mid - 1], hd[mid - 1], hr[mid], hd[mid], hr[mid + 1], hd[mid + 1]) < 0
        if not above.any():
            break   # locally convex and x-monotone in every layer: these are the lower hulls
        alive = np.delete(alive, mid[above])
    cuts = np.searchsorted(pts.layer[alive], np.arange(1, len(rates)))
    hulls = []
    for r, d, und, idx in zip(rates, dists, undominated, np.split(pts.menu_pos[alive], cuts),
                              strict=True):
        slopes = (d[idx][:-1] - d[idx][1:]) / np.diff(r[idx])
        # Exactly convex; cummin removes last-ulp wiggles so steps stay ordered within a layer.
        hulls.append(Hull(idx, r[idx], d[idx], np.minimum.accumulate(slopes), und))
    return tuple(hulls)


def lower_convex_hull(rates, distortions) -> Hull:
    """The points some Lagrangian argmin D + λR (λ ≥ 0) can select, with the step slopes.

    Dominated points go (for equal points the first menu position is kept); points strictly above
    a chord go; collinear points on a hull edge stay (selectable at a tie, useful to the finish).
    Orientation tests are exact (float filter, ``fractions`` fallback). Input order is free.
    """
    r, d = _menu_arrays(rates, distortions, "menu")
    return _hulls([r], [d])[0]


def prepare_menus(menus) -> PreparedMenus:
    """Validate ``menus`` (a sequence of (rates, distortions) pairs), build hulls and the path."""
    if isinstance(menus, PreparedMenus):
        return menus
    try:
        menus = list(menus)
    except TypeError:
        raise ConfigError(f"menus is {type(menus).__name__}; expected a sequence of (rates, "
                          "distortions) pairs, one per layer") from None
    if not menus:
        raise ConfigError("menus is empty; expected one (rates, distortions) pair per layer")
    rates, dists = [], []
    for i, menu in enumerate(menus):
        if not isinstance(menu, Sequence | np.ndarray) or len(menu) != 2:
            raise ConfigError(f"menus[{i}] is {type(menu).__name__}; expected a (rates, "
                              "distortions) pair of 1-D arrays")
        r, d = _menu_arrays(menu[0], menu[1], f"menus[{i}]")
        rates.append(r)
        dists.append(d)
    hulls = _hulls(rates, dists)
    sizes = np.array([h.rates.size for h in hulls])
    layer = np.repeat(np.arange(sizes.size), sizes - 1)
    step = np.concatenate([np.arange(s - 1) for s in sizes])
    slope = np.concatenate([h.slopes for h in hulls])
    order = np.lexsort((step, layer, -slope))  # ties: lower layer first, then the layer's order
    return PreparedMenus(
        rates=tuple(rates), distortions=tuple(dists), hulls=hulls,
        hull=_points(rates, dists, [h.index for h in hulls]),
        cand=_points(rates, dists, [h.undominated for h in hulls]),
        hull_cand=np.concatenate([np.searchsorted(r[h.undominated], h.rates)
                                  for r, h in zip(rates, hulls, strict=True)]),
        step_layer=layer[order],
        step_rate=np.concatenate([np.diff(h.rates) for h in hulls])[order],
        step_gain=np.concatenate([-np.diff(h.distortions) for h in hulls])[order],
        step_slope=slope[order])


def _number(value, name: str, allow_inf: bool = False) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if math.isnan(x) or x < 0 or (math.isinf(x) and not allow_inf):
        raise ConfigError(f"{name}={value!r} must be a finite number ≥ 0"
                          + (" (or inf)" if allow_inf else ""))
    return x


def _fmt(x: float) -> str:
    """Short when that is exact, else every digit: a refusal must not read "8 is below 8"."""
    return f"{x:g}" if float(f"{x:g}") == x else repr(float(x))


def _totals(pm: PreparedMenus, pos: np.ndarray, fixed: float) -> tuple[float, float]:
    cur = pm.hull.offset[:-1] + pos
    return math.fsum([fixed, *pm.hull.rates[cur]]), math.fsum(pm.hull.dists[cur])


def _prefix(pm: PreparedMenus, k: int) -> np.ndarray:
    """Hull position per layer after the first k steps of the Lagrangian path."""
    return np.bincount(pm.step_layer[:k], minlength=len(pm.hulls))


def _allocation(pm, choice, fixed, slope, bound, method) -> Allocation:
    rates = np.array([r[j] for r, j in zip(pm.rates, choice, strict=True)])
    dists = np.array([d[j] for d, j in zip(pm.distortions, choice, strict=True)])
    return Allocation(np.asarray(choice, dtype=np.int64), rates, dists,
                      math.fsum([fixed, *rates]), math.fsum(dists), slope, bound, method)


def allocate_at_slope(menus, lam: float, fixed_bytes: float = 0.0) -> Allocation:
    """Per layer argmin_j D_ij + λ R_ij: the water-filling solution at water level λ.

    Ties go to the cheaper point (fewer bytes). λ = inf takes each layer's smallest point and
    λ = 0 its most accurate one. The result is optimal among all allocations with no more rate,
    so its lower bound is its own distortion.
    """
    pm, lam = prepare_menus(menus), _number(lam, "lam", allow_inf=True)
    fixed = _number(fixed_bytes, "fixed_bytes")
    # Steps are sorted by slope, so "every step steeper than λ" is a prefix of the path.
    pos = _prefix(pm, int(np.searchsorted(-pm.step_slope, -lam, side="left")))
    alloc = _allocation(pm, pm.hull.menu_pos[pm.hull.offset[:-1] + pos], fixed, lam, 0.0,
                        "lagrangian")
    return replace(alloc, lower_bound=alloc.distortion)


def lagrangian_path(menus, fixed_bytes: float = 0.0):
    """Every Lagrangian solution at once, for R–D curves: arrays (slopes, rates, distortions).

    Entry k (0..S) is the allocation after the k steepest hull steps of all layers: the argmin
    for every λ between slopes[k] (the next step's slope; 0 after the last) and the slope of
    step k − 1. Totals are running sums (within float rounding of the exact ones).
    """
    pm, fixed = prepare_menus(menus), _number(fixed_bytes, "fixed_bytes")
    rate0, dist0 = _totals(pm, _prefix(pm, 0), fixed)
    return (np.append(pm.step_slope, 0.0), rate0 + np.r_[0.0, np.cumsum(pm.step_rate)],
            dist0 - np.r_[0.0, np.cumsum(pm.step_gain)])


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is unknown; choose one of {', '.join(METHODS)}")


def allocate_to_budget(menus, budget_bytes: float, fixed_bytes: float = 0.0,
                       method: str = "greedy", max_dp_work: float = 2e7) -> Allocation:
    """Smallest total distortion with fixed_bytes + Σ_i R_i ≤ budget_bytes.

    ``"lagrangian"``: the longest prefix of the Lagrangian path that fits (exact breakpoints, no
    bisection), optimal among all allocations with no more bytes than it uses. ``"greedy"``: then
    improving moves (over hull points, then all undominated points) until none fits the bytes
    left. ``"exact"``: a multiple-choice knapsack DP over all menu points (integer rates;
    refused when points × (budget span + 1) > ``max_dp_work``). ``slope`` is the water level λ
    of the Lagrangian solution and ``lower_bound`` = D_prefix − λ·(budget − R_prefix), the
    convex-hull relaxation: the optimum lies in [lower_bound, distortion].
    """
    pm, budget = prepare_menus(menus), _number(budget_bytes, "budget_bytes", allow_inf=True)
    fixed = _number(fixed_bytes, "fixed_bytes")
    _check_method(method)
    steps = pm.step_slope.size
    smallest = _totals(pm, _prefix(pm, 0), fixed)[0]
    if budget < smallest:
        raise ConfigError(f"budget_bytes={_fmt(budget)} is below the smallest achievable total "
                          f"{_fmt(smallest)} bytes (each layer's smallest candidate + fixed_bytes="
                          f"{_fmt(fixed)}); raise the budget or offer cheaper candidates")
    k = int(np.searchsorted(smallest + np.cumsum(pm.step_rate), budget, side="right"))
    while k > 0 and _totals(pm, _prefix(pm, k), fixed)[0] > budget:
        k -= 1  # float rates only: the running sum rounded below the exact total
    pos = _prefix(pm, k)
    rate, dist = _totals(pm, pos, fixed)
    lam = float(pm.step_slope[k]) if k < steps else 0.0
    bound = dist - lam * (budget - rate) if k < steps else dist
    choice = _finish(pm, pos, budget, fixed, method, max_dp_work, minimise_rate=False)
    return _allocation(pm, choice, fixed, lam, bound, method)


def allocate_to_distortion(menus, max_distortion: float, fixed_bytes: float = 0.0,
                           method: str = "greedy", max_dp_work: float = 2e7) -> Allocation:
    """Smallest total rate with Σ_i D_i ≤ max_distortion: the dual of ``allocate_to_budget``.

    ``"lagrangian"`` is the shortest prefix of the Lagrangian path that meets the target (optimal
    among allocations with no more distortion than it has); ``"greedy"`` then sheds bytes by
    improving moves; ``"exact"`` is the knapsack DP. ``lower_bound`` is a bound on the RATE: the
    relaxation R_prefix − (target − D_prefix)/λ_last, λ_last the slope of the last step taken.
    """
    pm, target = prepare_menus(menus), _number(max_distortion, "max_distortion", allow_inf=True)
    fixed = _number(fixed_bytes, "fixed_bytes")
    _check_method(method)
    steps = pm.step_slope.size
    smallest = _totals(pm, np.diff(pm.hull.offset) - 1, fixed)[1]
    if target < smallest:
        raise ConfigError(f"max_distortion={_fmt(target)} is below the smallest achievable total "
                          f"distortion {_fmt(smallest)} (each layer's most accurate candidate); "
                          "raise the target or offer more accurate candidates")
    top = _totals(pm, _prefix(pm, 0), fixed)[1]
    cum = top - np.cumsum(pm.step_gain)
    k = 0 if top <= target else min(steps, int(np.searchsorted(-cum, -target, "left")) + 1)
    while k < steps and _totals(pm, _prefix(pm, k), fixed)[1] > target:
        k += 1  # float distortions only: the running sum rounded above the exact total
    pos = _prefix(pm, k)
    rate, dist = _totals(pm, pos, fixed)
    lam = float(pm.step_slope[k]) if k < steps else 0.0
    bound = rate - (target - dist) / pm.step_slope[k - 1] if k > 0 else rate
    choice = _finish(pm, pos, target, fixed, method, max_dp_work, minimise_rate=True)
    return _allocation(pm, choice, fixed, lam, bound, method)


def _finish(pm: PreparedMenus, pos, limit, fixed, method, max_dp_work, minimise_rate):
    """Menu positions from the Lagrangian's hull positions ``pos``, finished by ``method``.

    "greedy": a local search over hull points, then one over all undominated points from where
    the first ended (only improves; alone it often strands bytes early on a point off the hull).
    "exact": the knapsack DP; among optimal allocations the one with the fewest bytes.
    """
    if method == "lagrangian":
        return pm.hull.menu_pos[pm.hull.offset[:-1] + pos]
    if method == "greedy":
        pos = _local_search(pm.hull, pos, limit, fixed, minimise_rate)
        pos = _local_search(pm.cand, pm.hull_cand[pm.hull.offset[:-1] + pos], limit, fixed,
                            minimise_rate)
        return pm.cand.menu_pos[pm.cand.offset[:-1] + pos]
    span = math.fsum(r.max() - r.min() for r in pm.rates)
    room = limit - math.fsum([fixed, *(r.min() for r in pm.rates)])
    dp, picks, units = _knapsack(pm, span if minimise_rate else min(room, span), max_dp_work)
    if not minimise_rate:
        return _backtrack(pm, picks, units, int(np.flatnonzero(dp == dp[-1])[0]))
    # The fewest bytes within the target, confirmed with exact sums; the last capacity holds
    # every layer's most accurate point, which meets any accepted target.
    for c in [*np.flatnonzero(dp <= limit), dp.size - 1]:
        choice = _backtrack(pm, picks, units, int(c))
        if math.fsum(d[j] for d, j in zip(pm.distortions, choice, strict=True)) <= limit:
            return choice
    raise AssertionError("unreachable: the most accurate allocation meets the target")


def _local_search(points: _Points, pos, limit, fixed, minimise_rate) -> np.ndarray:
    """Best improving move while one exists: the objective falls strictly, the constraint holds.

    ``pos``: one position per layer within ``points``. A move sends one layer to any other
    point; an exchange first moves another layer one point over in the direction that frees
    constraint (fewer bytes, or less distortion) and spends what it freed. Ties: single moves
    first, then lower layers.
    """
    off, lay, sizes = points.offset, points.layer, np.diff(points.offset)
    obj, con = (points.rates, points.dists) if minimise_rate else (points.dists, points.rates)
    free, base = (1, 0.0) if minimise_rate else (-1, fixed)
    for _ in range(obj.size):
        cur = off[:-1] + pos
        used = math.fsum([base, *con[cur]])
        d_obj, d_con = obj - obj[cur][lay], con - con[cur][lay]  # (U,): layer lay[m] goes to m
        back = np.flatnonzero((pos + free >= 0) & (pos + free < sizes))  # layers that can free
        s_pt = off[back] + pos[back] + free
        freed = max(0.0, -d_con[s_pt].min()) if back.size else 0.0
        cols = np.flatnonzero((d_obj < 0) & (d_con <= limit - used + freed))
        if cols.size == 0:
            break
        # (1 + exchanges, moves): row 0 is the move alone, row 1 + b exchanges with layer back[b]
        tot_obj = np.vstack([d_obj[cols], d_obj[s_pt][:, None] + d_obj[cols]])
        tot_con = np.vstack([d_con[cols], d_con[s_pt][:, None] + d_con[cols]])
        ok = (tot_obj < 0) & (tot_con <= limit - used)
        ok[1:] &= back[:, None] != lay[cols][None, :]
        if not ok.any():
            break
        row, col = np.unravel_index(np.argmin(np.where(ok, tot_obj, np.inf)), ok.shape)
        new, moved = pos.copy(), lay[cols[col]]
        new[moved] = cols[col] - off[moved]
        if row:
            new[back[row - 1]] += free
        nxt = off[:-1] + new
        # Exact checks (fsum rounds correctly): the constraint holds and the objective falls,
        # even by less than one ulp of the total.
        if math.fsum([base, *con[nxt]]) > limit or math.fsum([*obj[nxt], *-obj[cur]]) >= 0:
            break  # float rounding misled the vectorised choice: keep the safe state
        pos = new
    return pos


def _knapsack(pm: PreparedMenus, capacity: float, max_work: float):
    """Multiple-choice knapsack, exact for integer rates, over the undominated points (a
    dominated point never beats the point dominating it, so the optimum is over all points).

    With u_ij = (R_ij − min_j R_ij)/g (g the gcd of all of them), dp[c] = min Σ_i D_i over
    choices with Σ_i u_i ≤ c, for c = 0..⌊capacity/g⌋; picks[i][c] is layer i's argmin among
    its candidates (the cheapest on ties). dp is non-increasing in c.
    """
    for i, r in enumerate(pm.rates):
        if not np.array_equal(r, np.round(r)):
            raise ConfigError(f"method='exact' needs integer rates (bytes); menus[{i}] has rate "
                              f"{float(r[r != np.round(r)][0])!r}: round rates up to bytes or use "
                              "method='greedy'")
    cuts = pm.cand.offset
    rates = [pm.cand.rates[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    dists = [pm.cand.dists[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    units = [(r - r[0]).astype(np.int64) for r in rates]  # r[0] is the layer's smallest rate
    g = int(np.gcd.reduce(np.concatenate(units))) or 1
    units = [u // g for u in units]
    cap = int(math.floor(capacity)) // g
    work = sum(u.size for u in units) * (cap + 1)
    if work > max_work:
        raise ConfigError(f"method='exact' needs {work:.3g} DP updates (candidates × (budget span"
                          f" in steps of {g} bytes + 1)), above max_dp_work={max_work:g}; use "
                          "method='greedy' (gap ≤ distortion − lower_bound) or raise max_dp_work")
    dp, picks = np.zeros(cap + 1), []
    for u, d in zip(units, dists, strict=True):
        cur, arg = np.full(cap + 1, np.inf), np.zeros(cap + 1, np.int32)
        for j in np.flatnonzero(u <= cap):
            cand = dp[: cap + 1 - u[j]] + d[j]     # (cap + 1 − u_j,) this layer at point j
            better = cand < cur[u[j]:]
            cur[u[j]:][better], arg[u[j]:][better] = cand[better], j
        dp = cur
        picks.append(arg)
    return dp, picks, units


def _backtrack(pm: PreparedMenus, picks, units, c: int) -> np.ndarray:
    """Menu positions of the DP's argmin at capacity c, found from the last layer back."""
    pos = np.zeros(len(picks), np.int64)
    for i in reversed(range(len(picks))):
        pos[i] = picks[i][c]
        c -= int(units[i][pos[i]])
    return pm.cand.menu_pos[pm.cand.offset[:-1] + pos]
