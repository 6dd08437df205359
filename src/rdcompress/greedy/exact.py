"""The exact greedy score Δ_u = |E_t[L(net with unit u ← t)] − L(net)| (paper 3).

t has two outcomes (``replacements.Outcomes``), so E_t L = (1 − q_u) L(low) + q_u L(high): two
forward passes over the calibration batch per unit. They are vectorized with ``torch.func``:
``vmap`` over a chunk of perturbed copies of one weight tensor, ``functional_call`` for the
forward, so any architecture works. Cost per refresh: 2 · units forward passes — small models
only (the second-order score in ``curvature.py`` is the fast path, checked against this one).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, vmap

from rdcompress.greedy.loss import batch_loss
from rdcompress.greedy.replacements import Outcomes

_CHUNK_ELEMENTS = 1 << 22  # elements of perturbed weight copies held at once (~32 MB float64)


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name, detached (what ``functional_call`` substitutes)."""
    state = {name: p.detach() for name, p in model.named_parameters()}
    state.update({name: b for name, b in model.named_buffers()})
    return state


def exact_scores(model: nn.Module, name: str, outcomes: Outcomes, units: torch.Tensor,
                 inputs: torch.Tensor, targets: torch.Tensor, loss: str,
                 chunk: int | None = None) -> torch.Tensor:
    """(len(units),) float64 Δ_u for the listed ``units`` at the model's current weights.

    Args:
        model: in eval mode; parameter ``name`` holds the current (partly replaced) weight.
        outcomes: the two outcomes of t for every weight of ``name``.
        units: (U,) int64 unit ids to score.
        inputs, targets: the calibration batch; loss: "cross-entropy" | "mse".
        chunk: perturbed copies per vmap call; None bounds their memory.
    """
    state = model_state(model)
    weight = state[name]
    flat = weight.reshape(-1)  # (numel,)
    size = chunk or max(1, _CHUNK_ELEMENTS // max(1, flat.numel()))

    def loss_of(candidate: torch.Tensor) -> torch.Tensor:  # (numel,) -> scalar
        outputs = functional_call(model, {**state, name: candidate.reshape(weight.shape)},
                                  (inputs,))
        return batch_loss(outputs, targets, loss)

    batched = vmap(loss_of)
    low, high = outcomes.low.reshape(-1), outcomes.high.reshape(-1)
    scores = torch.empty(units.numel(), dtype=torch.float64)
    with torch.no_grad():
        base = batched(flat.unsqueeze(0)).to(torch.float64)[0]  # same kernels as the rest
        for start in range(0, units.numel(), size):
            part = units[start:start + size]  # (c,)
            member = outcomes.unit_index.unsqueeze(0) == part.unsqueeze(1)  # (c, numel)
            loss_low = batched(torch.where(member, low, flat)).to(torch.float64)  # (c,)
            loss_high = batched(torch.where(member, high, flat)).to(torch.float64)
            q = outcomes.q[part]
            expected = (1 - q) * loss_low + q * loss_high
            scores[start:start + part.numel()] = (expected - base).abs()
    return scores
