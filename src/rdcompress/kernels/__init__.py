"""Pure array kernels (numpy/torch tensors in and out) under the method and model layers:
rate allocation across layers (``allocate``), entropy-constrained quantization on a uniform grid
(``uniform``) and error-compensating rounding through input second moments (``gptq``)."""

from rdcompress.kernels.allocate import (
    Allocation,
    Hull,
    PreparedMenus,
    allocate_at_slope,
    allocate_to_budget,
    allocate_to_distortion,
    lagrangian_path,
    lower_convex_hull,
    prepare_menus,
)
from rdcompress.kernels.gptq import gptq_factor, gptq_levels, output_error
from rdcompress.kernels.uniform import UniformQuantization, ecsq_uniform, reconstruct

__all__ = [
    "Allocation",
    "Hull",
    "PreparedMenus",
    "UniformQuantization",
    "allocate_at_slope",
    "allocate_to_budget",
    "allocate_to_distortion",
    "ecsq_uniform",
    "gptq_factor",
    "gptq_levels",
    "lagrangian_path",
    "lower_convex_hull",
    "output_error",
    "prepare_menus",
    "reconstruct",
]
