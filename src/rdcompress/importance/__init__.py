"""Diagonal weight importance for every parameter of an ``nn.Module`` (paper §5.1, §6.1-6.2).

>>> from rdcompress.importance import compute_importance, Importance
>>> imp = compute_importance(model, loader, "fisher", temperature=2.0)
>>> imp.save("imp.safetensors"); Importance.load("imp.safetensors", model)

Objectives (``config.OBJECTIVES``): "baseline" (ones), "fisher" (Table 1, exact, one backward per
class), "fisher-mc" (sampled labels), "output" (eq. 5), "gradient" (Table 2, per-sample squared
loss gradients), "hessian" and "gradient+hessian" (Table 2, via ``importance.hessian``).
First-order objectives are exact per sample: per-layer rules (``rules.py``) for Linear, Conv1d/2d,
BatchNorm (eval), LayerNorm, GroupNorm and Embedding, and a torch.func fallback for any other
module that owns parameters (``fallback.py``); tied parameters add every use per sample before
squaring (``capture.py``). File format: docs/importance-format.md (``result.py``).
"""

from rdcompress.importance.accumulator import ImportanceAccumulator
from rdcompress.importance.compute import (
    accumulate_importance,
    baseline_importance,
    compute_importance,
)
from rdcompress.importance.config import OBJECTIVES, ImportanceConfig
from rdcompress.importance.result import FORMAT_TAG, FORMAT_VERSION, Importance, weights_hash
from rdcompress.importance.rules import RULES
from rdcompress.importance.temperature import fit_temperature

__all__ = [
    "FORMAT_TAG", "FORMAT_VERSION", "OBJECTIVES", "RULES", "Importance", "ImportanceAccumulator",
    "ImportanceConfig", "accumulate_importance", "baseline_importance", "compute_importance",
    "fit_temperature", "weights_hash",
]
