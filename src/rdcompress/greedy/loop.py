"""The greedy loop of one layer (paper 3): score, replace the least sensitive unit by one draw.

For ⌊α·units⌋ steps: score every still-untouched unit u by Δ_u (``exact.py`` or
``curvature.py``), replace the unit of smallest score by ONE random draw of t and freeze it. With
``block`` b > 1 the scores are refreshed once per b replacements and the b lowest-scored units
are replaced together (their interactions ignored until the next refresh); b = 1 is the paper's
loop. Ties go to the lower unit id. Draws use ``generator``: one uniform per replaced unit, in
the order the units are replaced, so a seed fixes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from rdcompress.greedy.replacements import Outcomes, draw

Scorer = Callable[[torch.Tensor], torch.Tensor]  # (U,) unit ids -> (U,) float64 scores


@dataclass
class LayerOutcome:
    """What the loop did to one layer."""

    weight: torch.Tensor  # the new weight: original where untouched, a drawn t elsewhere
    replaced: torch.Tensor  # (numel,) bool: positions whose unit was replaced
    drew_high: torch.Tensor  # (numel,) bool: replaced positions that drew ``high``
    steps: int  # units replaced (⌊α·units⌋)
    refreshes: int  # score evaluations


def step_count(alpha: float, n_units: int) -> int:
    """⌊α·units⌋, robust to α·n landing just below an integer in floating point."""
    return int(alpha * n_units + 1e-9)


def greedy_layer(weight: torch.Tensor, outcomes: Outcomes, alpha: float, block: int,
                 scorer: Scorer, generator: torch.Generator) -> LayerOutcome:
    """Run the loop on ``weight`` IN PLACE (a parameter of the working copy that ``scorer``
    evaluates); returns what was done. ``block``: units replaced per refresh."""
    n_units = outcomes.q.numel()
    steps = step_count(alpha, n_units)
    remaining = torch.ones(n_units, dtype=torch.bool)
    unit_replaced = torch.zeros(n_units, dtype=torch.bool)
    unit_high = torch.zeros(n_units, dtype=torch.bool)
    flat = weight.data.view(-1)  # (numel,)
    low, high = outcomes.low.reshape(-1), outcomes.high.reshape(-1)
    done = refreshes = 0
    while done < steps:
        candidates = remaining.nonzero().squeeze(1)  # (U,) ascending unit ids
        scores = scorer(candidates)
        refreshes += 1
        count = min(block, steps - done)
        order = torch.sort(scores, stable=True).indices[:count]
        chosen = candidates[order]  # (count,) in increasing score
        went_high = draw(outcomes, chosen, generator)
        unit_replaced[chosen] = True
        unit_high[chosen] = went_high
        remaining[chosen] = False
        touched = torch.zeros(n_units, dtype=torch.bool)
        touched[chosen] = True
        positions = touched[outcomes.unit_index]  # (numel,)
        with torch.no_grad():
            new = torch.where(unit_high[outcomes.unit_index], high, low)
            flat[positions] = new[positions]
        done += count
    replaced = unit_replaced[outcomes.unit_index]
    return LayerOutcome(weight.detach().clone(), replaced,
                        replaced & unit_high[outcomes.unit_index], steps, refreshes)
