"""Deploy a compressed model: modules that stay compressed in memory, and exports.

- ``load_compressed(path)``: the ``.rdz`` model with Linear/Conv2d layers holding codebook +
  packed indices, kept values + positions, or low-rank factors (``modules``, ``sources``;
  in-memory layouts in ``packing``), outputs equal to ``rdcompress.compress.load``'s;
- ``weight_bytes`` / ``total_weight_bytes``: resident weight memory per module (``memory``);
- ``export(path, format, out)``: the registered export targets (``export.TARGETS``).
"""

from rdcompress.deploy.load import load_compressed
from rdcompress.deploy.memory import total_weight_bytes, weight_bytes
from rdcompress.deploy.modules import (
    CompressedConv2d,
    CompressedLinear,
    FactorizedConv2d,
    FactorizedLinear,
)
from rdcompress.deploy.sources import Composed, Dense, Palette, SparseValues, WeightSource

__all__ = [
    "Composed", "CompressedConv2d", "CompressedLinear", "Dense", "FactorizedConv2d",
    "FactorizedLinear", "Palette", "SparseValues", "WeightSource", "load_compressed",
    "total_weight_bytes", "weight_bytes",
]
