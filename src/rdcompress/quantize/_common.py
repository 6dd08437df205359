"""Shared pieces of the 1-D quantizers: input validation, the result type, the objective.

Every quantizer minimizes, over a codebook c (k,) and assignments A (n,), the separable objective
of the paper (§5.3, App. C.2, Table 2 with the 1/4 folded into H):

    J(c, A) = Σ_i I_i (w_i − c_{A_i})² + H_i (w_i − c_{A_i})⁴                         (C.2)

Inputs are validated here (public functions call ``prepare``); everything inside is float64 numpy.
Inputs are only read, never written, so float64 arrays are used without a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rdcompress.codec.entropy import entropy_per_symbol
from rdcompress.errors import ConfigError, NonFiniteError


@dataclass(frozen=True)
class QuantizationResult:
    """What a quantizer found.

    ``objective`` is the distortion J above (no rate term, also for entropy-constrained
    quantization; add ``lam * n * entropy_bits`` for its Lagrangian).
    """

    codebook: np.ndarray  # (k,) float64, ascending
    assignments: np.ndarray  # (n,) int64 in [0, k)
    objective: float  # Σ I (w − ŵ)² + H (w − ŵ)⁴ in float64
    iterations: int = 0  # update steps run (0 for the exact solver)
    converged: bool = True  # False when max_iter stopped the loop first

    @property
    def reconstruction(self) -> np.ndarray:
        """ŵ = c[A], shape (n,)."""
        return self.codebook[self.assignments]

    @property
    def entropy_bits(self) -> float:
        """Empirical entropy of the assignments in bits per weight: Σ_j −(n_j/n) log2(n_j/n)."""
        return entropy_per_symbol(self.assignments, self.codebook.size)


def to_float64(values, name: str) -> np.ndarray:
    """A 1-D float64 numpy view or copy of a numpy array or torch tensor (any device).

    No copy when ``values`` already is float64 on the CPU: callers only read it.
    """
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch here
        values = values.detach().to("cpu").double().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ConfigError(
            f"{name} has shape {array.shape}; quantizers take 1-D arrays. Flatten it first "
            f"(w.reshape(-1))."
        )
    return array


def prepare(
    w, I=None, H=None, k: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Validate (w, I, H, k) and return float64 arrays; I defaults to ones, H to None.

    Raises NonFiniteError for NaN/inf, ConfigError for negative importances, mismatched shapes,
    an empty layer, or k outside [1, number of distinct weights].
    """
    w = to_float64(w, "w")
    if w.size == 0:
        raise ConfigError("w is empty; a quantizer needs at least one weight.")
    _check_finite(w, "w")
    I = np.ones_like(w) if I is None else _importance(I, w, "I")
    H = None if H is None else _importance(H, w, "H")
    if H is not None and not np.any(H):
        H = None  # an all-zero quartic term is the quadratic problem
    if k is not None:
        check_k(w, k)
    return w, I, H


def check_k_value(k) -> None:
    """ConfigError unless k is a positive integer (the distinct-weight bound is ``check_k``)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k={k!r} clusters is not a positive integer; use k >= 1.")


def check_k(w: np.ndarray, k: int) -> None:
    check_k_value(k)
    if k <= _distinct_lower_bound(w, k):
        return  # O(n) proof that there are enough distinct values, no sort needed
    distinct = np.unique(w).size
    if k > distinct:
        raise ConfigError(
            f"k={k} clusters is more than the {distinct} distinct weight values of this layer; "
            f"choose k <= {distinct}."
        )


def _distinct_lower_bound(w: np.ndarray, k: int) -> int:
    """Non-empty cells of a 4k-cell histogram: a lower bound on the distinct values of w."""
    low, high = float(w.min()), float(w.max())
    if high <= low:
        return 1
    cells = np.minimum(((w - low) * (4 * k / (high - low))).astype(np.int64), 4 * k - 1)
    return int(np.count_nonzero(np.bincount(cells, minlength=4 * k)))


def _importance(values, w: np.ndarray, name: str) -> np.ndarray:
    array = to_float64(values, name)
    if array.shape != w.shape:
        raise ConfigError(
            f"{name} has shape {array.shape} but w has shape {w.shape}; importances are "
            f"per weight, same shape as w."
        )
    _check_finite(array, name)
    if array.min() < 0:
        raise ConfigError(
            f"{name} has {int(np.sum(array < 0))} negative entries (min {array.min():.3g}); "
            f"importances must be >= 0. Clamp them (np.maximum(I, 0)) or add a regularizer μ."
        )
    return array


def _check_finite(array: np.ndarray, name: str) -> None:
    with np.errstate(all="ignore"):  # a huge finite sum may overflow: then check each entry
        if np.isfinite(np.add.reduce(array)):
            return  # one pass: NaN and ±inf propagate into the sum (and cancel only into NaN)
    bad = ~np.isfinite(array)
    if np.any(bad):
        raise NonFiniteError(
            f"{name} has {int(bad.sum())} non-finite entries (NaN or inf) of {array.size}, "
            f"first at index {int(np.flatnonzero(bad)[0])}; expected finite values."
        )


def distortion(
    w: np.ndarray, I: np.ndarray, H: np.ndarray | None, w_hat: np.ndarray,
    out: np.ndarray | None = None,
) -> float:
    """J = Σ I (w − ŵ)² + H (w − ŵ)⁴, evaluated directly in float64 (no prefix sums).

    ``out``: an (n,) float64 scratch buffer (it may be ``w_hat`` itself), overwritten; fresh
    large arrays are costly where page faults are slow.
    """
    diff2 = np.subtract(w, w_hat, out=out)  # (n,), one buffer reused in place
    np.square(diff2, out=diff2)
    # einsum, not np.dot: a BLAS dot can be 10x slower here when its threads compete for cores
    total = float(np.einsum("i,i->", I, diff2))
    if H is not None:
        total += float(np.einsum("i,i->", H, np.square(diff2, out=diff2)))
    return total
