"""Importance-weighted entropy-constrained scalar quantization on a uniform grid (pure numpy).

The grid is ``step · Z``: weight i is stored as an integer level q_i and decodes to
``float32(float64(step) · q_i)`` (``reconstruct``), exactly what a uniform codebook in a
``.rdz`` file decodes to. ``ecsq_uniform`` minimises the Lagrangian

    J(q) = Σ_i I_i (w_i − ŵ_i)² [+ H_i (w_i − ŵ_i)⁴]  +  λ · Σ_i −log2 p(q_i)

over integer levels, p the empirical (order-0) distribution of the levels — the quantity an
order-0 entropy coder pays. It alternates the two exact steps of entropy-constrained Lloyd
(Chou, Lookabaugh & Gray 1989) with the reconstruction points pinned to the grid:

1. given p, every weight takes its exact argmin over ALL used levels (ties: the cheaper level),
2. given q, p = counts / n (levels that fall out of use never return: their rate is infinite).
   Ties in step 1 go to the cheaper level, then to the nearer one.

Neither step increases J, so J decreases monotonically to a fixed point. λ = 0 is rounding to
the nearest level, except that a weight of importance 0 goes to the most probable level, which
costs it nothing. Step 1 is exact yet fast: a level can only beat the weight's nearest level q*
if I (w − ŵ)² ≤ I (w − ŵ*)² + λ (r(q*) − r_min), which bounds the levels worth scoring to a
window around w / step; weights are scored in groups of similar window width, and a weight
whose window covers the whole grid is scored against every level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rdcompress.errors import ConfigError

MAX_LEVELS = 1 << 16  # a grid wider than this is not a quantizer but a copy
_CHUNK = 1 << 22  # elements of a (weights × levels) score matrix per block


@dataclass(frozen=True)
class UniformQuantization:
    """Levels of one tensor on the grid ``step · Z`` and what they cost."""

    step: float              # float32-representable grid step > 0
    levels: np.ndarray       # (n,) int64 integer levels, same order as the weights
    distortion: float        # Σ I (w − ŵ)² [+ H (w − ŵ)⁴] with ŵ = reconstruct(step, levels)
    entropy_bits: float      # Σ −log2 p(q_i): the order-0 code length of the levels, bits
    iterations: int          # alternations run
    converged: bool          # True if the levels stopped changing

    @property
    def low(self) -> int:
        """Smallest level (the first codebook entry is step · low)."""
        return int(self.levels.min()) if self.levels.size else 0

    @property
    def span(self) -> int:
        """Number of grid points from the smallest to the largest level used."""
        return int(self.levels.max()) - self.low + 1 if self.levels.size else 1


def grid_step(step: float) -> float:
    """``step`` rounded to float32 (the format stores it so); refuses non-positive steps."""
    value = float(np.float32(step))
    if not (np.isfinite(value) and value > 0):
        raise ConfigError(f"step={step!r} must be a finite number > 0 (as a float32)")
    return value


def reconstruct(step: float, levels: np.ndarray, dtype=np.float32) -> np.ndarray:
    """Decoded values ``dtype(float64(step) · q)``, bit-exact with the codec's uniform codebook."""
    return (np.float64(grid_step(step)) * np.asarray(levels, dtype=np.float64)).astype(dtype)


def _objective(w: np.ndarray, I: np.ndarray, H: np.ndarray | None,
               w_hat: np.ndarray) -> np.ndarray:
    d2 = (w - w_hat) ** 2
    return I * d2 if H is None else I * d2 + H * d2 * d2


def _radius(I: np.ndarray, H: np.ndarray | None, budget: np.ndarray) -> np.ndarray:
    """Largest |w − ŵ| with I t² [+ H t⁴] ≤ budget (inf where the weight costs nothing)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if H is None:
            t2 = np.where(I > 0, budget / I, np.inf)
        else:
            # H t⁴ + I t² = budget  →  t² = 2 budget / (I + sqrt(I² + 4 H budget)), stable.
            quad = 2 * budget / (I + np.sqrt(I * I + 4 * H * budget))
            t2 = np.where(I > 0, quad, np.where(H > 0, np.sqrt(budget / H), np.inf))
    return np.sqrt(np.maximum(t2, 0.0))


def assign_levels(w: np.ndarray, I: np.ndarray, step: float, rate_bits: np.ndarray, low: int,
                  lam: float, H: np.ndarray | None = None) -> np.ndarray:
    """Exact per-weight argmin_q I (w − ŵ_q)² [+ H (w − ŵ_q)⁴] + λ · rate_bits[q − low].

    ``rate_bits`` (K,) is the cost in bits of levels low .. low+K−1 (inf = unavailable; at least
    one finite). Ties go to the cheaper level, then the nearer, then the lower one. Returns (n,)
    int64 levels.
    """
    w, I = np.asarray(w, np.float64), np.asarray(I, np.float64)
    rate = np.asarray(rate_bits, np.float64)
    levels_all = np.arange(low, low + rate.size)
    finite = np.isfinite(rate)
    if not finite.any():
        raise ConfigError("every level has infinite rate; at least one must be available")
    avail = levels_all[finite]  # (K',) increasing
    avail_rate = rate[finite]
    values = reconstruct(step, avail).astype(np.float64)  # (K',) the decoded grid
    # Nearest available level (by value), its cost, and the window worth scoring around it.
    pos = np.clip(np.searchsorted(values, w), 1, max(avail.size - 1, 1))
    if avail.size == 1:
        return np.full(w.shape, avail[0], dtype=np.int64)
    left, right = values[pos - 1], values[pos]
    nearest = np.where(w - left <= right - w, pos - 1, pos)
    near_cost = _objective(w, I, H, values[nearest]) + lam * avail_rate[nearest]
    r_min = float(avail_rate.min())
    # A level beating the nearest one needs distortion ≤ this (slack: float rounding).
    budget = (near_cost - lam * r_min) * (1 + 1e-9) + 1e-300
    radius = _radius(I, H, np.maximum(budget, 0.0))
    # Candidates: [lo, hi), always holding the nearest level (alone when budget < 0).
    lo = np.minimum(np.searchsorted(values, w - radius, side="left"), nearest)
    hi = np.maximum(np.searchsorted(values, w + radius, side="right"), nearest + 1)
    width = np.maximum(hi - lo, 1)
    best = nearest.copy()
    # Score weights in groups of window width 2^b (b = 0, 1, ...), each as one matrix.
    bucket = np.ceil(np.log2(width)).astype(np.int64)
    order = np.argsort(bucket, kind="stable")
    bounds = np.searchsorted(bucket[order], np.arange(bucket.max() + 2))
    for b in range(bucket.max() + 1):
        group = order[bounds[b]:bounds[b + 1]]
        if group.size == 0:
            continue
        span = min(1 << b, avail.size)
        start = np.clip(lo[group], 0, avail.size - span)  # (g,)
        rows = max(1, _CHUNK // span)
        for s in range(0, group.size, rows):
            idx, st = group[s:s + rows], start[s:s + rows]
            cand = st[:, None] + np.arange(span)[None, :]  # (g, span) positions in avail
            cost = _objective(w[idx, None], I[idx, None],
                              None if H is None else H[idx, None], values[cand])
            cand_rate = avail_rate[cand]
            cost = cost + lam * cand_rate
            # Exact ties go to the cheaper level, then the nearer one, then the lower one.
            tied = cost == cost.min(axis=1, keepdims=True)
            tied_rate = np.where(tied, cand_rate, np.inf)
            tied &= tied_rate == tied_rate.min(axis=1, keepdims=True)
            gap = np.where(tied, np.abs(w[idx, None] - values[cand]), np.inf)
            best[idx] = cand[np.arange(idx.size), np.argmin(gap, axis=1)]
    return avail[best].astype(np.int64)


def ecsq_uniform(w: np.ndarray, I: np.ndarray, step: float, lam: float = 0.0, *,
                 H: np.ndarray | None = None, max_iter: int = 30,
                 tol: float = 1e-6) -> UniformQuantization:
    """Minimise Σ I (w − ŵ)² [+ H (w − ŵ)⁴] + λ Σ −log2 p(q) over levels q on ``step · Z``.

    Args:
        w: (n,) weights; I: (n,) importances >= 0; H: optional (n,) quartic weights >= 0.
        step: grid step > 0 (rounded to float32, as stored).
        lam: λ >= 0, objective units per bit. 0 = nearest level.
        max_iter: alternations at most (each never increases the Lagrangian).
        tol: stop once an alternation lowers the Lagrangian by less than ``tol`` times its
            value (0: run to the fixed point or ``max_iter``).
    """
    w = np.asarray(w, np.float64).reshape(-1)
    I = np.asarray(I, np.float64).reshape(-1)
    H = None if H is None else np.asarray(H, np.float64).reshape(-1)
    step = grid_step(step)
    if I.shape != w.shape or (H is not None and H.shape != w.shape):
        raise ConfigError(f"w {w.shape}, I {I.shape} and H must have one shape")
    if not (np.isfinite(lam) and lam >= 0):
        raise ConfigError(f"lam={lam!r} must be a finite number >= 0")
    if not np.all(np.isfinite(w)):
        raise ConfigError("the weights hold NaN/inf")
    if w.size == 0:
        return UniformQuantization(step, np.zeros(0, np.int64), 0.0, 0.0, 0, True)
    top = np.abs(w).max() / step
    if top >= MAX_LEVELS // 2:
        raise ConfigError(f"step={step:g} puts the largest weight |w|={np.abs(w).max():g} at "
                          f"level {top:.0f}; use a step above {2 * np.abs(w).max() / MAX_LEVELS:g}")
    low, high = int(np.floor(w.min() / step)), int(np.ceil(w.max() / step))
    # Start: nearest level for everyone (all levels available at equal rate).
    levels = assign_levels(w, I, step, np.zeros(high - low + 1), low, 0.0, H)
    converged, iterations, previous = False, 0, np.inf
    for iterations in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        counts = np.bincount(levels - low, minlength=high - low + 1)
        with np.errstate(divide="ignore"):
            rate = np.where(counts > 0, -np.log2(counts / w.size), np.inf)
        # (λ = 0: distortion only; the rate then just breaks ties, e.g. weights with I = 0.)
        new = assign_levels(w, I, step, rate, low, lam, H)
        if np.array_equal(new, levels):
            converged = True
            break
        levels = new
        if lam > 0 and tol > 0:
            current = _lagrangian(w, I, H, step, levels, lam)
            if previous - current <= tol * abs(current):
                break
            previous = current
    return _result(w, I, H, step, levels, iterations, converged)


def _lagrangian(w, I, H, step, levels, lam) -> float:
    w_hat = reconstruct(step, levels).astype(np.float64)
    counts = np.bincount(levels - levels.min())
    counts = counts[counts > 0]
    bits = float(-(counts * np.log2(counts / levels.size)).sum())
    return float(_objective(w, I, H, w_hat).sum()) + lam * bits


def _result(w, I, H, step, levels, iterations, converged) -> UniformQuantization:
    w_hat = reconstruct(step, levels).astype(np.float64)
    counts = np.bincount(levels - levels.min())
    counts = counts[counts > 0]
    bits = float(-(counts * np.log2(counts / levels.size)).sum())
    return UniformQuantization(step, levels, float(_objective(w, I, H, w_hat).sum()), bits,
                               iterations, converged)
