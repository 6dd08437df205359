"""Recovery losses on a batch of logits (N, C): pure functions.

- task: cross-entropy with the labels;
- distill: E_x KL(f_w(x) ‖ f_ŵ(x)) at temperature T against the original (w) — the paper's own
  output distortion with the original as teacher; no labels. Multiplied by T² so that its
  gradients keep their scale as T changes (Hinton et al. 2015);
- mix: α·task + (1 − α)·distill.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rdcompress.errors import ConfigError


def distill_loss(student: torch.Tensor, teacher: torch.Tensor,
                 temperature: float = 1.0) -> torch.Tensor:
    """T² · mean over the batch of KL(softmax(teacher/T) ‖ softmax(student/T)), nats."""
    log_q = F.log_softmax(student / temperature, dim=1)  # (N, C), compressed model
    log_p = F.log_softmax(teacher / temperature, dim=1)  # (N, C), original
    kl = (log_p.exp() * (log_p - log_q)).sum(1).mean()
    return kl * temperature**2


def recovery_loss(kind: str, student: torch.Tensor, labels: torch.Tensor | None,
                  teacher: torch.Tensor | None, temperature: float = 1.0,
                  mix_weight: float = 0.5) -> torch.Tensor:
    """The loss ``kind`` ("task", "distill" or "mix") of one batch."""
    if kind != "distill" and labels is None:
        raise ConfigError(f"loss={kind!r} needs labels; the data has none: use loss='distill'")
    if kind != "task" and teacher is None:
        raise ConfigError(f"loss={kind!r} needs the original model's outputs: pass original=")
    if kind == "task":
        assert labels is not None
        return F.cross_entropy(student, labels)
    assert teacher is not None
    distill = distill_loss(student, teacher, temperature)
    if kind == "distill":
        return distill
    assert labels is not None
    return mix_weight * F.cross_entropy(student, labels) + (1 - mix_weight) * distill
