"""Error-compensating rounding of a weight matrix to a uniform grid (GPTQ / OBS), pure torch.

For a layer y = W x with input second moment H = E[x xᵀ] (d × d), the output error of a
reconstruction Ŵ is tr((W − Ŵ) H (W − Ŵ)ᵀ). Rounding each weight alone ignores that errors on
correlated inputs add up; GPTQ (Frantar et al. 2023, after Optimal Brain Surgeon) rounds the
columns one at a time and moves each column's rounding error onto the columns not yet rounded,
along H⁻¹, which is the least-squares correction of the output for that column's error.

    H⁻¹ = Uᵀ U (U upper triangular: the Cholesky factor of H⁻¹, transposed)
    for j = 0 .. d−1:  q_j = round(w_j / step);  e = (w_j − step q_j) / U_jj
                        w_{j+1:} −= e U_{j, j+1:}      (for every row at once)

Inputs that never fire (H_jj = 0) carry no output: their weights go to level 0. H is damped by
``damp`` × mean(diag H) for a stable inverse, as in GPTQ.
"""

from __future__ import annotations

import numpy as np
import torch

from rdcompress.errors import ConfigError
from rdcompress.kernels.uniform import grid_step, reconstruct


def output_error(delta: torch.Tensor, H: torch.Tensor, row_weight: torch.Tensor | None = None
                 ) -> float:
    """Σ_r g_r δ_rᵀ H δ_r for δ (out, d), H (d, d), g (out,) (default 1)."""
    delta = delta.to(torch.float64)
    per_row = ((delta @ H.to(torch.float64)) * delta).sum(1)  # (out,)
    if row_weight is not None:
        per_row = per_row * row_weight.to(torch.float64)
    return float(per_row.sum())


Factor = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def gptq_factor(H: torch.Tensor, damp: float = 0.01, act_order: bool = True) -> Factor:
    """(U, dead, order): the upper Cholesky factor of the damped H⁻¹ (d, d) with rows and
    columns in ``order``, the dead inputs (d,) bool, and the order (d,) in which columns are
    rounded: by decreasing H_jj with ``act_order`` (GPTQ's "act-order": the inputs of most energy
    first, while every other column can still absorb their error), else 0..d−1. It depends on
    H only: compute it once per layer and reuse it for every step."""
    if H.ndim != 2 or H.shape[0] != H.shape[1]:
        raise ConfigError(f"H {tuple(H.shape)} must be square (d, d)")
    if not damp > 0:
        raise ConfigError(f"damp={damp!r} must be > 0")
    H = H.detach().to(torch.float64).clone()
    d = H.shape[0]
    dead = torch.diagonal(H) <= 0
    H[dead, dead] = 1.0
    H += damp * float(torch.diagonal(H).mean()) * torch.eye(d, dtype=torch.float64)
    order = (torch.argsort(-torch.diagonal(H), stable=True) if act_order
             else torch.arange(d))
    H = H[order][:, order]
    try:
        L = torch.linalg.cholesky(H)
        U = torch.linalg.cholesky(torch.cholesky_inverse(L), upper=True)
    except RuntimeError as error:  # torch.linalg.LinAlgError subclasses RuntimeError
        raise ConfigError(f"the input moment is not positive definite even after damping "
                          f"({error}); raise damp") from None
    return U, dead, order


def gptq_levels(W: torch.Tensor, H: torch.Tensor, step: float, damp: float = 0.01,
                block: int = 128, factor: Factor | None = None, act_order: bool = True
                ) -> np.ndarray:
    """Integer levels (out, d) of W (out, d) on the grid ``step · Z``, rounded column by column
    with the error of each column compensated on the later ones through H (d, d) PSD.
    ``factor``: ``gptq_factor(H, damp)`` computed before (H and damp are then not used)."""
    if W.ndim != 2 or H.shape != (W.shape[1], W.shape[1]):
        raise ConfigError(f"W {tuple(W.shape)} and H {tuple(H.shape)} do not match: need "
                          "(out, d) and (d, d)")
    U, dead, order = factor if factor is not None else gptq_factor(H, damp, act_order)
    step = grid_step(step)
    W = W.detach().to(torch.float64).clone()
    d = W.shape[1]
    W[:, dead] = 0.0
    W = W[:, order]
    levels = torch.empty_like(W, dtype=torch.int64)
    f32_step = torch.tensor(step, dtype=torch.float64)
    for start in range(0, d, block):
        stop = min(start + block, d)
        Wb = W[:, start:stop].clone()  # (out, b) the block, updated in place
        Ub = U[start:stop, start:stop]
        Eb = torch.zeros_like(Wb)
        for j in range(stop - start):
            q = torch.round(Wb[:, j] / f32_step)
            levels[:, start + j] = q.to(torch.int64)
            decoded = (q * f32_step).to(torch.float32).to(torch.float64)  # as the file decodes
            err = (Wb[:, j] - decoded) / Ub[j, j]
            Wb[:, j + 1:] -= err[:, None] * Ub[j, j + 1:][None, :]
            Eb[:, j] = err
        W[:, stop:] -= Eb @ U[start:stop, stop:]  # the block's errors, onto every later column
    unpermuted = torch.empty_like(levels)
    unpermuted[:, order] = levels
    return unpermuted.numpy()


def gptq_reference(W: np.ndarray, H: np.ndarray, step: float, damp: float = 0.01,
                   act_order: bool = True) -> np.ndarray:
    """The same rounding, one column and one full update at a time (slow; for tests)."""
    W, H = np.array(W, np.float64), np.array(H, np.float64)
    d = W.shape[1]
    dead = np.diag(H) <= 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * np.diag(H).mean() * np.eye(d)
    order = np.argsort(-np.diag(H), kind="stable") if act_order else np.arange(d)
    W, H = W[:, order], H[np.ix_(order, order)]
    Hinv = np.linalg.inv(H)
    step = grid_step(step)
    levels = np.zeros(W.shape, np.int64)
    for j in range(d):
        # OBS: round column j, then the optimal update of the remaining columns given H⁻¹
        # restricted to them (recomputed from scratch here instead of via the Cholesky factor).
        q = np.round(W[:, j] / np.float64(step))
        levels[:, j] = q
        err = W[:, j] - reconstruct(step, q).astype(np.float64)
        W[:, j + 1:] -= np.outer(err / Hinv[j, j], Hinv[j, j + 1:])
        # Remove j from the inverse (Schur complement): H⁻¹ of the columns still free.
        Hinv = Hinv - np.outer(Hinv[:, j], Hinv[j, :]) / Hinv[j, j]
    unpermuted = np.empty_like(levels)
    unpermuted[:, order] = levels
    return unpermuted
