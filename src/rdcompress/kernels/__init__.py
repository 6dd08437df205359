"""Pure array kernels (numpy in, numpy out) under the method and model layers."""

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

__all__ = [
    "Allocation",
    "Hull",
    "PreparedMenus",
    "allocate_at_slope",
    "allocate_to_budget",
    "allocate_to_distortion",
    "lagrangian_path",
    "lower_convex_hull",
    "prepare_menus",
]
