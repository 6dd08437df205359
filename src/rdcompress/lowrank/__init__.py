"""Low-rank factorization of Linear/Conv2d weights (companion paper §2, operator factorization).

Pure tensor functions: ``factorize`` (truncated SVD, FWSVD, element-wise weighted, whitened),
``allocate`` (ranks at a global budget), ``moments`` (input second moments by hooks);
modules: ``LowRankLinear``/``LowRankConv2d`` and ``factorize_modules``; ``svt``: singular value
thresholding fine-tuning. The compress method is ``rdcompress.compress.LowRankConfig``.
"""

from rdcompress.lowrank.allocate import (
    DENSE,
    allocate_ranks,
    distortion_curve,
    layer_cost,
    uniform_ranks,
)
from rdcompress.lowrank.factorize import (
    as_matrix,
    fwsvd,
    max_useful_rank,
    row_weights,
    truncated_svd,
    weighted_lowrank,
    whitened_svd,
)
from rdcompress.lowrank.modules import (
    LowRankConv2d,
    LowRankLinear,
    can_factorize,
    factorize_modules,
)
from rdcompress.lowrank.moments import InputMoments, collect_input_moments
from rdcompress.lowrank.svt import (
    SVTConfig,
    oneshot_finetune,
    rank_schedule,
    svt_finetune,
    threshold_singular_values,
)

__all__ = [
    "DENSE", "InputMoments", "LowRankConv2d", "LowRankLinear", "SVTConfig", "allocate_ranks",
    "as_matrix", "can_factorize", "collect_input_moments", "distortion_curve",
    "factorize_modules", "fwsvd", "layer_cost", "max_useful_rank", "oneshot_finetune",
    "rank_schedule", "row_weights", "svt_finetune", "threshold_singular_values",
    "truncated_svd", "uniform_ranks", "weighted_lowrank", "whitened_svd",
]
