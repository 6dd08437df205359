"""Dependent (trellis-coded) quantization on a uniform grid, decided by Viterbi (pure numpy).

The NNC standard's (and VVC's) dependent quantization: two scalar quantizers on the grid
``step · Z``, chosen per weight by a 4-state machine driven by the parity of the previous level:

    Q0 (states 0, 1):  level k  ->  2k · step                   (even multiples)
    Q1 (states 2, 3):  level k  ->  (2k − sgn k) · step          (odd multiples and 0)
    next state = TRANSITIONS[state][k & 1],  TRANSITIONS = [[0, 2], [2, 0], [1, 3], [3, 1]]

Each quantizer alone has spacing 2·step, yet the sequence of reconstructions moves on a denser
lattice than either (a trellis code): at equal levels' entropy the distortion is lower than
one uniform quantizer's. The state machine is the format's (``codec.dq``); the state starts at
0 at every row start (a row = ``cols`` weights in row-major order; rows are independent, which
is what lets the Viterbi run on all rows at once).

:func:`dq_trellis` minimises, per row, over level sequences

    J(k) = Σ_i I_i (w_i − ŵ_i)²  +  λ · Σ_i bits[q_i, k_i]

(ŵ the decoded values as the codec reconstructs them, q_i = state_i >> 1 the quantizer in use,
``bits`` a rate model per quantizer and level, :class:`RateModel`) exactly by the Viterbi
algorithm over the 4 states, with the candidate levels of each weight either every level of
the rate model (``exhaustive``) or, per quantizer, the two levels bracketing w / step and 0:
with λ = 0 those always hold the optimum (the nearest level of each parity), with λ > 0 a
level further away can only win through the rate (0 is the cheap one it may win for).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rdcompress.codec.dq import MAX_DQ_LEVEL, TRANSITIONS, dq_multiples, dq_states
from rdcompress.errors import ConfigError

# For next state ns: the two (previous state, parity) pairs that lead to it.
_PREDECESSORS = np.array([[[0, 0], [1, 1]], [[2, 0], [3, 1]], [[0, 1], [1, 0]],
                          [[2, 1], [3, 0]]], dtype=np.int64)


@dataclass(frozen=True)
class RateModel:
    """Bits of level k in quantizer q: ``bits[q, k − low]`` for k in [low, low + span);
    ``escape`` bits for a level outside (it may still be chosen, at that cost)."""

    low: int
    bits: np.ndarray  # (2, span) float64
    escape: float

    @classmethod
    def flat(cls) -> RateModel:
        """Every level costs the same: λ · rate is a constant, the trellis minimises D."""
        return cls(0, np.zeros((2, 1)), 0.0)

    @classmethod
    def from_levels(cls, levels: np.ndarray, cols: int, prior: float = 0.5) -> RateModel:
        """Order-0 code lengths of ``levels`` per quantizer (counts + ``prior``), the model
        an entropy coder of these levels pays, iterated once by the caller."""
        levels = np.asarray(levels, dtype=np.int64).reshape(-1)
        quantizer = dq_states(levels, cols) >> 1
        low = int(levels.min())
        span = int(levels.max()) - low + 1
        counts = np.zeros((2, span))
        np.add.at(counts, (quantizer, levels - low), 1.0)
        probability = (counts + prior) / (counts.sum(1, keepdims=True) + prior * span)
        bits = -np.log2(probability)
        return cls(low, bits, float(bits.max()) + 1.0)

    def of(self, quantizer: np.ndarray, level: np.ndarray) -> np.ndarray:
        index = level - self.low
        inside = (index >= 0) & (index < self.bits.shape[1])
        return np.where(inside, self.bits[quantizer, np.clip(index, 0, self.bits.shape[1] - 1)],
                        self.escape)


@dataclass(frozen=True)
class DQResult:
    """Levels of one tensor under dependent quantization and what they cost."""

    levels: np.ndarray  # (n,) int64 transmitted levels k, row-major
    distortion: float  # Σ I (w − ŵ)² with ŵ = dq_reconstruct(step, levels, cols)
    rate_bits: float  # Σ bits[q_i, k_i] under the rate model used
    cost: float  # distortion + λ · rate_bits (what the Viterbi minimised)


def _check_cols(count: int, cols: int) -> None:
    if not (isinstance(cols, (int, np.integer)) and cols >= 1 and count % cols == 0):
        raise ConfigError(f"cols={cols!r} must be a positive divisor of the {count} weights")


def dq_reconstruct(step: float, levels: np.ndarray, cols: int, dtype=np.float32) -> np.ndarray:
    """(n,) decoded values ``dtype(float64(step) · multiple)``, bit-exact with the codec."""
    return (np.float64(np.float32(step)) * dq_multiples(levels, cols).astype(np.float64)
            ).astype(dtype)


def _candidates(x: np.ndarray, quantizer: int, exhaustive: np.ndarray | None) -> np.ndarray:
    """(..., C) candidate levels of quantizer ``quantizer`` for weights at x = w / step."""
    if exhaustive is not None:
        return np.broadcast_to(exhaustive, x.shape + exhaustive.shape)
    if quantizer == 0:  # values 2k: the bracket [2a, 2a + 2] around x
        below = np.floor(x / 2)
    else:  # values 2k − sgn k: ..., −3, −1, 0, 1, 3, ... ; bracket around x
        below = np.where(x >= 0, np.floor((x + 1) / 2), np.ceil((x - 1) / 2) - 1)
    below = below.astype(np.int64)
    return np.stack([below, below + 1, np.zeros_like(below)], axis=-1)


def _values(levels: np.ndarray, quantizer: int) -> np.ndarray:
    return (2 * levels - quantizer * np.sign(levels)).astype(np.float64)


def dq_trellis(w: np.ndarray, I: np.ndarray, step: float, cols: int, lam: float = 0.0,
               rate: RateModel | None = None, exhaustive: bool = False) -> DQResult:
    """Levels minimising Σ I (w − ŵ)² + λ Σ bits over every path of the 4-state trellis.

    ``w``, ``I``: (n,) weights and importances (row-major, rows of ``cols``); ``step`` the
    grid step (rounded to float32 as the format stores it); ``rate`` the bits of each level
    per quantizer (default flat: distortion only); ``exhaustive`` scores every level of the
    rate model (small alphabets, the brute-force tests) instead of the three near candidates.
    """
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    I = np.asarray(I, dtype=np.float64).reshape(-1)
    if I.shape != w.shape:
        raise ConfigError(f"importance has {I.size} values for {w.size} weights")
    _check_cols(w.size, cols)
    step64 = float(np.float32(step))
    if not (np.isfinite(step64) and step64 > 0):
        raise ConfigError(f"step={step!r} must be a finite number > 0 (as a float32)")
    rate = rate or RateModel.flat()
    every = (np.arange(rate.bits.shape[1], dtype=np.int64) + rate.low) if exhaustive else None
    W, weight = w.reshape(-1, cols), I.reshape(-1, cols)  # (rows, cols)
    rows = W.shape[0]
    x = W / step64
    # What does not depend on the path, for every weight at once: the cheapest candidate of
    # each quantizer q and parity p, its cost and level: (rows, cols, q, p)
    pick_cost = np.empty((rows, cols, 2, 2))
    pick_level = np.zeros((rows, cols, 2, 2), dtype=np.int64)
    for quantizer in (0, 1):
        levels = _candidates(x, quantizer, every)  # (rows, cols, C)
        values = (np.float64(step64) * _values(levels, quantizer)).astype(np.float32)
        cost = weight[..., None] * (W[..., None] - values) ** 2
        if lam:
            cost = cost + lam * rate.of(np.full_like(levels, quantizer), levels)
        parity = levels & 1
        for p in (0, 1):
            masked = np.where(parity == p, cost, np.inf)
            pick = np.argmin(masked, axis=-1)[..., None]
            pick_cost[:, :, quantizer, p] = np.take_along_axis(masked, pick, -1)[..., 0]
            pick_level[:, :, quantizer, p] = np.take_along_axis(
                np.broadcast_to(levels, masked.shape), pick, -1)[..., 0]
    # by state: (rows, cols, 4 states, 2 parities); states 0, 1 use Q0, states 2, 3 use Q1
    state_cost = pick_cost[:, :, [0, 0, 1, 1], :]
    first_state, first_parity = _PREDECESSORS[:, 0, 0], _PREDECESSORS[:, 0, 1]
    second_state, second_parity = _PREDECESSORS[:, 1, 0], _PREDECESSORS[:, 1, 1]
    J = np.full((rows, 4), np.inf)
    J[:, 0] = 0.0
    took_second = np.zeros((cols, rows, 4), dtype=bool)
    for column in range(cols):
        total = J[:, :, None] + state_cost[:, column]  # (rows, 4, 2)
        first = total[:, first_state, first_parity]  # (rows, 4): into next state ns
        second = total[:, second_state, second_parity]
        took_second[column] = second < first
        J = np.minimum(first, second)
    levels = np.empty((rows, cols), dtype=np.int64)
    state = np.argmin(J, axis=1)
    total_cost = float(J[np.arange(rows), state].sum())
    for column in range(cols - 1, -1, -1):
        which = took_second[column, np.arange(rows), state].astype(np.int64)
        previous = _PREDECESSORS[state, which, 0]
        parity_used = _PREDECESSORS[state, which, 1]
        levels[:, column] = pick_level[np.arange(rows), column, previous >> 1, parity_used]
        state = previous
    flat = levels.reshape(-1)
    decoded = dq_reconstruct(step64, flat, cols).astype(np.float64)
    distortion = float((I * (w - decoded) ** 2).sum())
    in_use = dq_states(flat, cols) >> 1
    bits = float(rate.of(in_use, flat).sum())
    return DQResult(flat, distortion, bits, total_cost if lam else distortion)


def dq_quantize(w: np.ndarray, I: np.ndarray, step: float, cols: int,
                lam: float = 0.0, passes: int = 2) -> DQResult:
    """The trellis at λ with its rate model learnt from its own levels: the first pass
    minimises distortion alone, each further pass uses the order-0 code lengths (per
    quantizer) of the previous pass's levels. λ = 0 needs one pass."""
    result = dq_trellis(w, I, step, cols)
    if not lam:
        return result
    for _ in range(passes - 1):
        result = dq_trellis(w, I, step, cols, lam, RateModel.from_levels(result.levels, cols))
    return result




def gptq_dq_levels(W: np.ndarray, U: np.ndarray, dead: np.ndarray, step: float,
                   row_weight: np.ndarray | None = None, lam: float = 0.0,
                   rate: RateModel | None = None, block: int = 128) -> np.ndarray:
    """GPTQ's error feedback inside the trellis: (out, d) levels of W (out, d), each row a
    trellis row (state 0 at column 0), columns in their natural order (the decoder's).

    ``U`` (d, d): the upper Cholesky factor of the damped H⁻¹ without reordering
    (``kernels.gptq.gptq_factor(H, act_order=False)``), ``dead`` (d,) inputs that never fire
    (their weights go to 0). Each of the 4 states keeps its survivor path with its own
    error-compensated copy of the row's remaining weights: at column j the survivor into state
    ns is the cheaper of its two predecessors (state, parity), each with its best level q of
    that parity; its weights become w_{j+1:} − e U_{j, j+1:}, e = (w_j − ŵ_j) / U_jj. The path
    cost is Σ_j g_r e_j² + λ bits (Σ_j e_j² is the output error tr(δ H δᵀ) of GPTQ's
    sequential decomposition, g the row weights). With one state this is exactly GPTQ.
    """
    W = np.array(W, dtype=np.float64)
    out, d = W.shape
    step64 = float(np.float32(step))
    W[:, dead] = 0.0
    g = np.ones(out) if row_weight is None else np.asarray(row_weight, dtype=np.float64)
    rate = rate or RateModel.flat()
    survivors = np.broadcast_to(W, (4, out, d)).copy()  # (state, out, d)
    J = np.full((4, out), np.inf)
    J[0] = 0.0
    took_second = np.zeros((d, 4, out), dtype=bool)
    pick_level = np.zeros((d, 4, out, 2), dtype=np.int64)  # by previous state and parity
    first_state, first_parity = _PREDECESSORS[:, 0, 0], _PREDECESSORS[:, 0, 1]
    second_state, second_parity = _PREDECESSORS[:, 1, 0], _PREDECESSORS[:, 1, 1]
    rows = np.arange(out)[None, :]
    # Lazy updates as GPTQ's: within a block of columns each survivor carries its block
    # weights and errors; the later columns get the block's errors in one product, applied to
    # the survivor (before the block) each path descends from.
    for start in range(0, d, block):
        stop = min(start + block, d)
        local = survivors[:, :, start:stop].copy()  # (4, out, b)
        errors = np.zeros_like(local)
        origin = np.broadcast_to(np.arange(4)[:, None], (4, out)).copy()
        for j in range(start, stop):
            column = local[:, :, j - start]  # (4, out)
            cost, error, pick_level[j] = _column_choices(column, step64, U[j, j], g, lam,
                                                         rate, J)
            first = cost[first_state, :, first_parity]  # (4 next states, out)
            second = cost[second_state, :, second_parity]
            take = second < first
            took_second[j] = take
            J = np.minimum(first, second)
            previous = np.where(take, second_state[:, None], first_state[:, None])  # (4, out)
            parity_used = np.where(take, second_parity[:, None], first_parity[:, None])
            e = error[previous, rows, parity_used]  # (4, out)
            local, errors, origin = local[previous, rows], errors[previous, rows], origin[
                previous, rows]
            errors[:, :, j - start] = e
            local[:, :, j - start + 1:] -= e[:, :, None] * U[j, j + 1:stop][None, None, :]
        if stop < d:
            survivors[:, :, stop:] = survivors[origin, rows][:, :, stop:] - np.einsum(
                "sob,bk->sok", errors, U[start:stop, stop:])
    levels = np.empty((out, d), dtype=np.int64)
    state = np.argmin(J, axis=0)  # (out,)
    rows1 = np.arange(out)
    for j in range(d - 1, -1, -1):
        which = took_second[j, state, rows1].astype(np.int64)
        previous = _PREDECESSORS[state, which, 0]
        parity_used = _PREDECESSORS[state, which, 1]
        levels[:, j] = pick_level[j, previous, rows1, parity_used]
        state = previous
    return levels


def _column_choices(column: np.ndarray, step: float, pivot: float, g: np.ndarray,
                    lam: float, rate: RateModel, J: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the 4 survivors' (4, out) weights of a column (states 0, 1 on Q0, 2, 3 on Q1): per
    state and parity the cheapest level, its path cost J + g e² + λ bits and its error
    e = (w − ŵ) / pivot; each (4, out, 2)."""
    levels = np.concatenate([_candidates(column[:2] / step, 0, None),
                             _candidates(column[2:] / step, 1, None)])  # (4, out, C)
    quantizer = np.array([0, 0, 1, 1])[:, None, None]
    multiples = 2 * levels - quantizer * np.sign(levels)
    values = (np.float64(step) * multiples.astype(np.float64)).astype(np.float32)
    e = (column[:, :, None] - values) / pivot
    c = g[None, :, None] * e * e + J[:, :, None]
    if lam:
        c = c + lam * rate.of(np.broadcast_to(quantizer, levels.shape), levels)
    masked = np.where((levels & 1)[..., None] == np.array([0, 1]), c[..., None], np.inf)
    pick = np.argmin(masked, axis=2)[:, :, None, :]  # (4, out, 1, 2): per parity
    cost = np.take_along_axis(masked, pick, 2)[:, :, 0]
    error = np.take_along_axis(np.broadcast_to(e[..., None], masked.shape), pick, 2)[:, :, 0]
    level = np.take_along_axis(np.broadcast_to(levels[..., None], masked.shape), pick, 2)[
        :, :, 0]
    return cost, error, level


__all__ = ["DQResult", "MAX_DQ_LEVEL", "RateModel", "TRANSITIONS", "dq_multiples",
           "dq_quantize", "dq_reconstruct", "dq_states", "dq_trellis", "gptq_dq_levels"]
