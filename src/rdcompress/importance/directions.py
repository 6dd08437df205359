"""Output-space directions: every first-order objective as a sum of squared per-sample gradients.

Each objective is written as ``I = E_n[ sum_k (J_n^T u_{n,k})^2 ]`` where ``J_n = dz_n/dw`` is the
Jacobian of sample n's output and ``u_{n,k}`` a vector in output space, one per backward pass k.
With ``p = softmax(z/T)`` (a log-softmax, so no probability underflows to a NaN):

- ``fisher`` (Table 1, eq. 6 diagonal): ``sum_c (df_c/dw)^2 / f_c`` with
  ``df_c/dz = p_c (e_c - p) / T``, so it is ``sum_c (J^T u_c)^2`` with
  ``u_{n,c} = sqrt(p_c) (e_c - p) / T``, c = 1..C: columns of a square-root factor of the
  logit-space Fisher ``F = (diag(p) - p p^T) / T^2``. Any factor ``F = U U^T`` gives the same
  sum, and F has rank C - 1 (F 1 = 0), so ``fisher_directions`` uses the closed-form C x (C-1)
  Cholesky factor of the multinomial covariance (Tanabe & Sagae 1992): C - 1 backward passes.
- ``fisher-mc``: ``u = (e_y - p) / (T sqrt(M))`` with ``y ~ p``, M draws: unbiased for ``fisher``.
- ``gradient`` (Table 2): ``u = dL/dz = (p - e_y) / T``, L = cross-entropy of softmax(z/T).
- ``output`` (eq. 5): ``u_{n,j} = e_j``, one per output coordinate j.

All functions are pure: (N, C) tensors in, (N, C) tensors out.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


def softmax_probs(logits: Tensor, temperature: float) -> Tensor:
    """(N, C) logits -> (N, C) softmax(z/T), via log-softmax (exact zeros, never NaN)."""
    return torch.log_softmax(logits / temperature, dim=1).exp()


def multinomial_cov_columns(probs: Tensor) -> Iterator[Tensor]:
    """Columns of F (C x (C-1) per sample) with ``F F^T = diag(p) - p p^T``; each (N, C).

    The closed-form Cholesky factor of the multinomial covariance (Tanabe & Sagae 1992): per
    sample, with the classes sorted by ascending p and ``r_k = sum_{j >= k} p_j`` (sorted
    order), column k < C is ``sqrt(p_k r_{k+1} / r_k)`` at k and ``-p_j sqrt(p_k / (r_k r_{k+1}))``
    below it (zero above). Ascending order keeps the largest probability in every r, so
    r >= max p >= 1/C: no division by zero, even when probabilities underflow to 0 (their
    columns are then exactly 0). One class: a single zero column (the covariance is 0).
    """
    if probs.shape[1] == 1:
        yield torch.zeros_like(probs)
        return
    sorted_probs, order = probs.sort(dim=1)  # ascending
    remaining = sorted_probs.flip(1).cumsum(1).flip(1)  # r_k = sum_{j >= k} p_j, (N, C)
    rows = torch.arange(probs.shape[1], device=probs.device)
    for k in range(probs.shape[1] - 1):
        p_k, r_k = sorted_probs[:, k:k + 1], remaining[:, k:k + 1]  # (N, 1) each
        r_next = remaining[:, k + 1:k + 2]
        column = -sorted_probs * torch.sqrt(p_k / (r_k * r_next))  # (N, C), rows j > k
        column[:, k] = torch.sqrt(p_k * r_next / r_k).squeeze(1)
        column = column.masked_fill(rows < k, 0.0)
        yield torch.empty_like(column).scatter_(1, order, column)  # back to class order


def fisher_directions(logits: Tensor, temperature: float) -> Iterator[Tensor]:
    """C - 1 directions u_k, each (N, C), with ``sum_k u_k u_k^T = (diag(p) - p p^T) / T^2``."""
    for column in multinomial_cov_columns(softmax_probs(logits, temperature)):
        yield column / temperature


def fisher_mc_directions(logits: Tensor, temperature: float, draws: int,
                         generator: torch.Generator | None) -> Iterator[Tensor]:
    """``draws`` directions ``(e_y - p) / (T sqrt(draws))`` with y ~ softmax(z/T), each (N, C)."""
    probs = softmax_probs(logits, temperature)  # (N, C)
    scale = 1.0 / (temperature * draws ** 0.5)
    for _ in range(draws):
        labels = torch.multinomial(probs, 1, generator=generator)  # (N, 1)
        onehot = torch.zeros_like(probs).scatter_(1, labels, 1.0)
        yield (onehot - probs) * scale


def gradient_direction(logits: Tensor, labels: Tensor, temperature: float) -> Tensor:
    """``dL_n/dz_n = (p - e_y) / T`` for L = cross-entropy of softmax(z/T); (N, C)."""
    probs = softmax_probs(logits, temperature)
    onehot = torch.zeros_like(probs).scatter_(1, labels.view(-1, 1).long(), 1.0)
    return (probs - onehot) / temperature


def output_directions(outputs: Tensor) -> Iterator[Tensor]:
    """One-hot directions ``e_j`` for each output coordinate j of (N, D) outputs."""
    for j in range(outputs.shape[1]):
        direction = torch.zeros_like(outputs)
        direction[:, j] = 1.0
        yield direction
