"""The method registry: every compression method describes itself once, in its own file.

A method is a config dataclass, a handler and one ``register(MethodSpec(...))`` call at the end
of its module. Everything that lists methods reads this table: ``compress()``,
``config_from_dict``, the ``compress`` and ``sweep`` commands (choices, flags, help), the sweep
grid, the frontier and the plots. No module outside a method's own file tests its name.

>>> register(MethodSpec(name="my-method", config=MyConfig, handler=handle_my_method,
...                     label="my method", example={"strength": 0.5}))

The built-in methods live in the modules of ``BUILTINS``; they register themselves the first
time the table is read, so that importing this module stays cheap and free of cycles (randomized
greedy compression builds on ``rdcompress.compress``).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from rdcompress.errors import ConfigError

# One line per built-in method module (each ends with its register(...) calls).
BUILTINS = (
    "rdcompress.compress.prune",
    "rdcompress.compress.quantize",
    "rdcompress.compress.prune_quantize",
    "rdcompress.compress.lowrank",
    "rdcompress.greedy.api",
    "rdcompress.compress.target",
    "rdcompress.compress.recovered",
)


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets one field of a method's config (``rdcompress compress``
    and, as a sweep option, ``rdcompress sweep``). Flags of the same name in several methods
    share one argparse option: the first registration gives its type, choices and help."""

    flag: str  # "--keep"
    field: str  # the config field it sets
    type: Callable[[str], Any] | None = str  # None: a switch (store_true)
    help: str = ""
    choices: tuple | None = None
    aliases: tuple[str, ...] = ()  # old spellings, accepted and hidden
    short: str | None = None  # e.g. "-p"
    required: str | None = None  # what to say when none of its group is given ("--clusters K
    #                              or --bits B"); None: optional (the config's default)
    group: str | None = None  # flags of one group are mutually exclusive
    check: tuple[Callable[[Any], bool], str] | None = None  # (valid(value), "is outside ...")
    # other fields it needs, e.g. {"storage": "quantized"}
    requires: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    metavar: str | None = None


@dataclass(frozen=True)
class SweepAxis:
    """What ``rdcompress sweep`` varies for a method: one config field over a list of values."""

    field: str  # the config field
    values: tuple  # the default grid
    flag: str  # the sweep flag that lists values ("--keep"); methods may share one
    type: Callable[[Any], Any] = float  # of one value (from the command line or JSON)
    help: str = ""
    aliases: tuple[str, ...] = ()
    short: str | None = None


def _no_change(fields_: dict[str, Any], objective: str) -> dict[str, Any]:
    return fields_


@dataclass(frozen=True)
class MethodSpec:
    """Everything the rest of rdcompress needs to know about one compression method.

    ``handler(ctx, config)`` gets a ``Context`` (compress/context.py: the layers with their
    importances, the model, the calibration data, the assembler) and returns ``{name:
    LayerResult}`` for the layers it compressed, or a finished ``CompressedModel`` (methods
    that must measure the file or the model's outputs).
    """

    name: str  # in manifests, result rows, ``--method`` / ``--methods``
    config: type  # a dataclass validated in __post_init__, with ``method`` and ``to_dict()``
    handler: Callable[[Any, Any], Any]
    label: str  # in prose and messages: "pruning", "quantization"
    example: Mapping[str, Any]  # kwargs of a small valid config (tests, docs)
    # the fields this name fixes when the config type serves several names (greedy modes)
    fixed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    needs: frozenset[str] = frozenset()  # from the caller, whatever the settings: "calibration"
    uses_importance: bool = True  # False: scored on the calibration loss; a sweep runs it once
    #                               under the objective name "loss"
    flags: tuple[Flag, ...] = ()  # its ``rdcompress compress`` flags
    implied_by: tuple[str, ...] = ()  # flags that choose this method when --method is absent
    sweep: SweepAxis | None = None  # None: not offered by ``rdcompress sweep``
    in_default_sweep: bool = False  # swept when the user names no methods
    # the fields a sweep sets unless its options say otherwise
    sweep_defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sweep_options: tuple[Flag, ...] = ()  # sweep flags that set one field for every run
    adapt: Callable[[dict[str, Any], str], dict[str, Any]] = _no_change  # a sweep run's
    #   fields for an importance objective (e.g. the quartic quantizer for gradient+hessian)
    setting: Callable[[Any], str] | None = None  # the row's setting label (default: axis=value)
    paper_ratio: Callable[[Any, Any, Any], float] | None = None  # (config, compressed,
    #   summary) -> the paper's ratio of the run; default: summary.paper_ratio
    style: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # color, linestyle
    coder: str | None = None  # the entropy coder it writes unless the caller names one

    def build(self, **values: Any) -> Any:
        """The config with ``values`` and this name's fixed fields (ConfigError if invalid)."""
        clash = {k: v for k, v in values.items() if k in self.fixed and v != self.fixed[k]}
        if clash:
            raise ConfigError(f"{self.name}: {clash} contradicts {dict(self.fixed)}; use the "
                              "method that fixes those settings.")
        names = config_fields(self.config)
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(f"{self.name} has no setting {unknown[0]!r}; its settings are "
                              f"{sorted(names - set(self.fixed))}.")
        return self.config(**{**values, **self.fixed})

    def describe(self, config: Any) -> str:
        """The setting label of a run (``kept=0.1``, ``k=16``)."""
        if self.setting is not None:
            return self.setting(config)
        if self.sweep is None:
            return self.name
        value = getattr(config, self.sweep.field)
        return (f"{self.sweep.field}={value:g}" if isinstance(value, (int, float))
                else f"{self.sweep.field}={value}")

    def needs_of(self, config: Any) -> set[str]:
        """What this run needs from the caller beyond the model and importance."""
        return set(self.needs) | set(getattr(config, "needs", ()) or ())


_REGISTRY: dict[str, MethodSpec] = {}
_MODULES: dict[str, str] = {}  # name -> the module that registered it (for a stable order)
_LOADED = False


def register(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the table (a name registered twice is an error). Returns it."""
    if not isinstance(spec, MethodSpec):
        raise ConfigError(f"register() takes a MethodSpec, got {type(spec).__name__}.")
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ConfigError(f"a method named {spec.name!r} is already registered.")
    for flag in (*spec.flags, *spec.sweep_options):
        if flag.field not in config_fields(spec.config):
            raise ConfigError(f"{spec.name}: flag {flag.flag} sets {flag.field!r}, which "
                              f"{spec.config.__name__} does not have.")
    _REGISTRY[spec.name] = spec
    _MODULES[spec.name] = sys._getframe(1).f_globals.get("__name__", "")
    return spec


def unregister(name: str) -> None:
    """Remove a method (tests that register one at run time clean up with this)."""
    _REGISTRY.pop(name, None)
    _MODULES.pop(name, None)


def _load_builtins() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for module in BUILTINS:
            importlib.import_module(module)


def specs() -> list[MethodSpec]:
    """Every registered method: the built-ins in ``BUILTINS`` order, then the others in
    registration order."""
    _load_builtins()
    order = {module: i for i, module in enumerate(BUILTINS)}
    ranked = sorted(enumerate(_REGISTRY.values()),
                    key=lambda item: (order.get(_MODULES[item[1].name], len(order)), item[0]))
    return [spec for _, spec in ranked]


def names() -> tuple[str, ...]:
    return tuple(spec.name for spec in specs())


def default_sweep() -> tuple[str, ...]:
    """The methods a sweep runs when none are named."""
    return tuple(spec.name for spec in specs() if spec.in_default_sweep and spec.sweep)


def get(name: str) -> MethodSpec:
    """The spec of method ``name``; ConfigError listing the known ones otherwise."""
    _load_builtins()
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ConfigError(f"method {name!r} is unknown; expected one of {list(_REGISTRY)}.")
    return spec


def spec_of(config: Any) -> MethodSpec:
    """The spec a config object belongs to (by its ``method`` name and type)."""
    name = getattr(config, "method", None)
    _load_builtins()
    spec = _REGISTRY.get(name) if isinstance(name, str) else None
    if spec is None or not isinstance(config, spec.config):
        known = sorted({s.config.__name__ for s in _REGISTRY.values()})
        raise ConfigError(f"config of type {type(config).__name__} has no registered method; "
                          f"expected one of {known}.")
    return spec


def style(name: str) -> dict[str, Any]:
    """The plot style of method ``name`` (``"LABEL/name"`` of compared sweeps too); {} for a
    name no longer registered (rows from older results)."""
    _load_builtins()
    spec = _REGISTRY.get(name.rsplit("/", 1)[-1])
    return dict(spec.style) if spec else {}


def config_from_dict(data: Mapping[str, Any]) -> Any:
    """Rebuild a config from its ``to_dict()`` (e.g. a manifest's "settings"); keys that are
    not fields of the config (derived values, the file's layers and coder) are ignored."""
    data = dict(data)
    spec = get(data.pop("method", None))
    names = config_fields(spec.config)
    return spec.config(**{key: value for key, value in data.items() if key in names})


def config_fields(config_type: type) -> set[str]:
    return {f.name for f in fields(config_type) if f.init}


def per_layer(function: Callable[[list, Any], dict]) -> Callable[[Any, Any], dict]:
    """A handler from ``function(layers, config)`` for methods that only see the layers."""

    def handler(ctx: Any, config: Any) -> dict:
        return function(ctx.layers, config)

    handler.__name__ = handler.__qualname__ = function.__name__
    handler.__doc__ = function.__doc__
    return handler
