"""Unbiased random replacements t of a weight w (E t = w): pure tensor functions.

Every replacement here has two outcomes, so it is described by ``Outcomes``: per weight a
``low`` and a ``high`` value, and per *unit* (one weight, or one row/column/channel in the
structured version) the probability ``q`` of drawing ``high``; E t = low + q (high − low) = w and

    Var t = q (1 − q) (high − low)²                                   (one formula for both)

- pruning (paper §3): t = w · Bernoulli(p) / p  ->  low = 0, high = w/p, q = p,
  Var t = w² (1 − p) / p. In the structured version one Bernoulli scales the whole unit.
- stochastic rounding to the grid of spacing δ = M/k on [−M, M], M = ||W_ℓ||∞:
  levels −M, −M + δ, ..., M (2k intervals, 2k + 1 levels, 0 among them); low/high = the two
  neighbouring levels of w, q = (w − low)/(high − low), Var t = (high − w)(w − low) and
  |t − w| ≤ δ = M/k. (The paper speaks of "2k levels" and of the error bound M/k; only the grid
  of 2k intervals meets that bound — a grid of exactly 2k points has spacing 2M/(2k − 1) > M/k.)

Values are what the .rdz file will decode to: w/p and the levels are rounded to the weight's
dtype, and q is computed from the rounded values, so E t = w holds in exact arithmetic on the
stored numbers for rounding, and up to one rounding of w/p for pruning.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Outcomes:
    """The two outcomes of t for every weight of one layer."""

    low: torch.Tensor  # weight-shaped, the weight's dtype: outcome drawn with probability 1 − q
    high: torch.Tensor  # weight-shaped, the weight's dtype: outcome drawn with probability q
    q: torch.Tensor  # (n_units,) float64 in [0, 1]: P(t = high), one draw per unit
    unit_index: torch.Tensor  # (numel,) int64: the unit of each weight (row-major order)

    def weight_q(self) -> torch.Tensor:
        """(numel,) float64: q of each weight's unit."""
        return self.q[self.unit_index]

    def variance(self) -> torch.Tensor:
        """Weight-shaped float64 Var t = q (1 − q) (high − low)²."""
        q = self.weight_q().reshape(self.low.shape)
        spread = self.high.to(torch.float64) - self.low.to(torch.float64)
        return q * (1 - q) * spread * spread

    def mean(self) -> torch.Tensor:
        """Weight-shaped float64 E t = low + q (high − low) (equals w: tests check it)."""
        q = self.weight_q().reshape(self.low.shape)
        low = self.low.to(torch.float64)
        return low + q * (self.high.to(torch.float64) - low)


def unit_index(shape: tuple[int, ...], dim: int | None) -> torch.Tensor:
    """(numel,) int64 unit id of each position: itself (dim None) or its index along ``dim``."""
    numel = 1
    for size in shape:
        numel *= size
    if dim is None:
        return torch.arange(numel)
    index = torch.arange(shape[dim]).reshape([-1 if d == dim else 1 for d in range(len(shape))])
    return index.expand(shape).reshape(-1).clone()


def prune_outcomes(weight: torch.Tensor, p: float, units: torch.Tensor) -> Outcomes:
    """t = w · Bernoulli(p)/p, one Bernoulli per unit. weight: any shape S; units: (numel,)."""
    high = (weight.to(torch.float64) / p).to(weight.dtype)  # rounded once, as stored
    n_units = int(units.max()) + 1 if units.numel() else 0
    q = torch.full((n_units,), float(p), dtype=torch.float64)
    return Outcomes(torch.zeros_like(weight), high, q, units)


def rounding_grid(bound: float, k: int, dtype: torch.dtype) -> torch.Tensor:
    """(2k + 1,) levels −M + j·M/k, j = 0..2k, rounded to ``dtype`` (±M and 0 exact)."""
    j = torch.arange(2 * k + 1, dtype=torch.float64)
    levels = bound * ((j - k) / k)  # ±1.0 exact, so ±M exact; symmetric about 0
    return levels.to(dtype)


def rounding_outcomes(weight: torch.Tensor, levels: torch.Tensor) -> Outcomes:
    """Stochastic rounding of each weight to its two neighbouring ``levels`` (sorted, (L,)).

    Weights outside [levels[0], levels[-1]] are not expected (M = ||W||∞ covers them all).
    """
    flat = weight.reshape(-1).to(torch.float64)  # (numel,)
    grid = levels.to(torch.float64)  # (L,)
    upper = torch.searchsorted(grid, flat, side="left").clamp(max=grid.numel() - 1)  # grid ≥ w
    on_level = grid[upper] == flat
    lower = torch.where(on_level, upper, (upper - 1).clamp(min=0))
    low, high = grid[lower], grid[upper]
    spread = high - low
    q = torch.where(spread > 0, (flat - low) / torch.where(spread > 0, spread, 1.0),
                    torch.zeros_like(flat))
    shape = weight.shape
    return Outcomes(low.to(weight.dtype).reshape(shape), high.to(weight.dtype).reshape(shape),
                    q, torch.arange(flat.numel()))


def rounding_indices(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """(n,) int64 index into ``levels`` of each value, which must be one of the levels."""
    index = torch.searchsorted(levels.to(torch.float64), values.to(torch.float64), side="left")
    return index.clamp(max=levels.numel() - 1)


def draw(outcomes: Outcomes, units: torch.Tensor, generator: torch.Generator
         ) -> torch.Tensor:
    """(len(units),) bool: True where the unit draws ``high``. One uniform per unit, in order."""
    uniform = torch.rand(units.numel(), generator=generator, dtype=torch.float64)
    return uniform < outcomes.q[units]
