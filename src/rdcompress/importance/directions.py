"""Output-space directions: every first-order objective as a sum of squared per-sample gradients.

Each objective is written as ``I = E_n[ sum_k (J_n^T u_{n,k})^2 ]`` where ``J_n = dz_n/dw`` is the
Jacobian of sample n's output and ``u_{n,k}`` a vector in output space, one per backward pass k.
With ``p = softmax(z/T)`` (a log-softmax, so no probability underflows to a NaN):

- ``fisher`` (Table 1, eq. 6 diagonal): ``sum_c (df_c/dw)^2 / f_c`` with
  ``df_c/dz = p_c (e_c - p) / T``, so ``u_{n,c} = sqrt(p_c) (e_c - p) / T``, c = 1..C. The
  columns are a square-root factor of the logit-space Fisher ``(diag(p) - p p^T) / T^2``.
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


def fisher_directions(logits: Tensor, temperature: float) -> Iterator[Tensor]:
    """C directions ``sqrt(p_c) (e_c - p) / T``, each (N, C)."""
    probs = softmax_probs(logits, temperature)  # (N, C)
    root = probs.sqrt()
    for c in range(probs.shape[1]):
        direction = -probs * root[:, c:c + 1]
        direction[:, c] += root[:, c]
        yield direction / temperature


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
