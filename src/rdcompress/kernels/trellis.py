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


__all__ = ["DQResult", "MAX_DQ_LEVEL", "RateModel", "TRANSITIONS", "dq_multiples",
           "dq_quantize", "dq_reconstruct", "dq_states", "dq_trellis"]
