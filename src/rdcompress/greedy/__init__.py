"""Randomized greedy compression of wide networks (paper 3: El Cheairi, Gamarnik, Mazumder).

Post-training, layer by layer: score every untouched weight (or row/column/channel) by
Δ = |E_t[L(w ← t)] − L| for an unbiased random replacement t (E t = w), replace the least
sensitive by ONE draw of t, freeze it; ⌊α·units⌋ times. ``replacements`` (t for pruning and for
stochastic rounding), ``exact`` (Δ by forward passes), ``curvature`` (Δ ≈ ½ H_ii Var t),
``loop`` (the greedy loop), ``api`` (``greedy_compress`` -> a .rdz ``CompressedModel``),
``width`` (the paper's width experiment).
"""

from rdcompress.greedy.api import (
    STRUCTURED_UNITS,
    GreedyLayerStats,
    greedy_compress,
)
from rdcompress.greedy.config import GreedyConfig

__all__ = ["STRUCTURED_UNITS", "GreedyConfig", "GreedyLayerStats", "greedy_compress"]
