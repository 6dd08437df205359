"""The method table: config type -> handler. Adding a method = one module + one line here."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from rdcompress.compress._layers import LayerInput, LayerResult
from rdcompress.compress.allocate import AllocateConfig
from rdcompress.compress.lowrank import LowRankConfig, handle_lowrank
from rdcompress.compress.prune import PruneConfig, handle_prune
from rdcompress.compress.prune_quantize import PruneQuantizeConfig, handle_prune_quantize
from rdcompress.compress.quantize import QuantizeConfig, handle_quantize
from rdcompress.compress.target import handle_allocate
from rdcompress.errors import ConfigError

Handler = Callable[[list[LayerInput], Any], dict[str, LayerResult]]

HANDLERS: dict[type, Handler] = {
    PruneConfig: handle_prune,
    QuantizeConfig: handle_quantize,
    PruneQuantizeConfig: handle_prune_quantize,
    LowRankConfig: handle_lowrank,
}
# Methods that need the whole model (measure the file or the outputs): handler(ctx, config)
# -> CompressedModel, with a Context (compress/context.py).
MODEL_HANDLERS: dict[type, Callable[[Any, Any], Any]] = {
    AllocateConfig: handle_allocate,
}
METHODS: dict[str, type] = {
    AllocateConfig.method: AllocateConfig,
    PruneConfig.method: PruneConfig,
    QuantizeConfig.method: QuantizeConfig,
    PruneQuantizeConfig.method: PruneQuantizeConfig,
    LowRankConfig.method: LowRankConfig,
}
# Randomized greedy compression needs the model and data, so it has no handler (it runs as
# ``rdcompress.greedy.greedy_compress``); named here so that manifests rebuild its config.
# Imported on use: rdcompress.greedy builds on this package.
EXTERNAL_METHODS = {"greedy-prune": "rdcompress.greedy.config:GreedyConfig",
                    "greedy-quantize": "rdcompress.greedy.config:GreedyConfig"}


def handler_for(config: Any) -> Handler:
    handler = HANDLERS.get(type(config))
    if handler is None:
        raise ConfigError(
            f"config of type {type(config).__name__} has no registered method; expected one "
            f"of {[c.__name__ for c in HANDLERS]}."
        )
    return handler


def config_from_dict(data: dict) -> Any:
    """Rebuild a config from its ``to_dict()`` (e.g. a manifest's "settings")."""
    data = dict(data)
    method = data.pop("method", None)
    if method in EXTERNAL_METHODS:
        module, name = EXTERNAL_METHODS[method].split(":")
        return getattr(importlib.import_module(module), name).from_dict({"method": method,
                                                                          **data})
    if method not in METHODS:
        known = sorted([*METHODS, *EXTERNAL_METHODS])
        raise ConfigError(f"method={method!r} is unknown; expected one of {known}.")
    config_type = METHODS[method]
    names = {field.name for field in fields(config_type)}
    return config_type(**{key: value for key, value in data.items() if key in names})
