"""Compress a model: one config dataclass + handler per method, and the model-level API.

Methods (``registry``: one ``MethodSpec`` each, registered in the method's own module):
``PruneConfig`` (greedy by I·w² + H·w⁴), ``QuantizeConfig``
(per-layer importance-weighted codebooks), ``PruneQuantizeConfig`` (prune, then quantize the
survivors), ``LowRankConfig``; ``AllocateConfig`` (a uniform grid per layer, the grids chosen at
one rate–distortion slope to meet a file size or a measured output distortion).
``compress(model, config, importance)`` -> ``CompressedModel``; ``load(path)``.
"""

from rdcompress.compress._layers import LayerStats
from rdcompress.compress.allocate import AllocateConfig
from rdcompress.compress.api import CompressedModel, assemble, compress, load, select_layers
from rdcompress.compress.compose import compose_weight, make_recipe, part_name
from rdcompress.compress.lowrank import LowRankConfig
from rdcompress.compress.prune import PruneConfig
from rdcompress.compress.prune_quantize import PruneQuantizeConfig
from rdcompress.compress.quantize import ALGORITHMS, QuantizeConfig
from rdcompress.compress.registry import (
    MethodSpec,
    config_from_dict,
    get,
    names,
    register,
    spec_of,
    specs,
)

__all__ = [
    "ALGORITHMS", "AllocateConfig", "CompressedModel", "LayerStats", "LowRankConfig",
    "MethodSpec", "PruneConfig", "PruneQuantizeConfig", "QuantizeConfig", "assemble",
    "compose_weight", "compress", "config_from_dict", "get", "load", "make_recipe", "names",
    "part_name", "register", "select_layers", "spec_of", "specs",
]
