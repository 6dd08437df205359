"""Command-line flags generated from the method registry (``rdcompress.compress.registry``).

``rdcompress compress`` gets one option per ``Flag`` name over every method (a name shared by
several methods, such as ``--keep``, is one option), grouped under the first method that
declares it; ``config_from_flags`` builds the chosen method's config from the flags given and
refuses, before any work, a flag of another method, a missing required flag, a value its check
rejects, or a flag whose companion setting is absent. ``rdcompress sweep`` gets each method's
axis flag (the values it varies) and its option flags. Adding a method adds its flags here
without editing this file.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from rdcompress.cli._common import add_alias
from rdcompress.compress.registry import Flag, MethodSpec, SweepAxis, get, specs
from rdcompress.errors import ConfigError


def dest(flag: str) -> str:
    """The argparse dest of a generated option: "--keep" -> "m_keep" (no clash with the
    command's own options)."""
    return "m_" + flag.lstrip("-").replace("-", "_")


def add_flags(parser: argparse.ArgumentParser, flags_by_title: Iterable[tuple[str, tuple[Flag,
              ...]]]) -> dict[str, Flag]:
    """Add each flag name once, under the first title that lists it; returns {name: Flag}."""
    seen: dict[str, Flag] = {}
    for title, flags in flags_by_title:
        new = [flag for flag in flags if flag.flag not in seen]
        if not new:
            continue
        group = parser.add_argument_group(title)
        exclusive: dict[str, Any] = {}
        for flag in new:
            seen[flag.flag] = flag
            container = group
            if flag.group is not None:
                if flag.group not in exclusive:
                    exclusive[flag.group] = group.add_mutually_exclusive_group()
                container = exclusive[flag.group]
            _add(container, flag)
    return seen


def _add(container: Any, flag: Flag) -> None:
    names = [flag.short, flag.flag] if flag.short else [flag.flag]
    if flag.type is None:  # a switch; None (not given) stays distinguishable from False
        action = container.add_argument(*names, dest=dest(flag.flag), action="store_const",
                                        const=True, default=None, help=flag.help)
        for alias in flag.aliases:
            container.add_argument(alias, dest=dest(flag.flag), action="store_const",
                                   const=True, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        return
    action = container.add_argument(*names, dest=dest(flag.flag), type=flag.type,
                                    choices=flag.choices, default=None, help=flag.help,
                                    metavar=flag.metavar or (None if flag.choices else
                                                             flag.field.upper()))
    if flag.aliases:
        add_alias(container, action, *flag.aliases)


def add_method_flags(parser: argparse.ArgumentParser) -> dict[str, Flag]:
    """Every method's ``compress`` flags, grouped by the method that declares them first."""
    return add_flags(parser, ((f"{spec.label} (--method {spec.name})", spec.flags)
                              for spec in specs()))


def given_flags(args: argparse.Namespace) -> dict[str, Any]:
    """{flag name: value} of the generated flags the user gave."""
    every = {flag.flag for spec in specs() for flag in spec.flags}
    return {name: getattr(args, dest(name)) for name in every
            if getattr(args, dest(name), None) is not None}


def choose_method(method: str | None, given: dict[str, Any]) -> MethodSpec:
    """``--method``'s spec, or the one a given flag implies (a target implies allocate)."""
    if method is not None:
        return get(method)
    implied = [spec for spec in specs() if any(flag in given for flag in spec.implied_by)]
    if len(implied) == 1:
        return implied[0]
    hints = "; ".join(f"or {' / '.join(spec.implied_by)} (implies --method {spec.name})"
                      for spec in specs() if spec.implied_by)
    raise ConfigError(f"give --method ({', '.join(s.name for s in specs())}){', ' if hints else ''}"
                      f"{hints}")


def config_from_flags(spec: MethodSpec, given: dict[str, Any]) -> Any:
    """The config of ``spec`` that the given flags describe; ConfigError before any work."""
    own = {flag.flag: flag for flag in spec.flags}
    for name in given:
        if name not in own:
            takers = [s for s in specs() if any(f.flag == name for f in s.flags)]
            raise ConfigError(
                f"{name} is for {' / '.join(s.label for s in takers)} (--method "
                f"{' / '.join(s.name for s in takers)}), not for --method {spec.name}; drop one "
                "of them")
    for required in dict.fromkeys(f.required for f in spec.flags if f.required):
        if not any(f.flag in given for f in spec.flags if f.required == required):
            raise ConfigError(f"--method {spec.name} needs {required}")
    values = {own[name].field: value for name, value in given.items()}
    for name, value in given.items():
        flag = own[name]
        if flag.check is not None and not flag.check[0](value):
            shown = f"{value:g}" if isinstance(value, float) and math.isfinite(value) else value
            raise ConfigError(f"{name} {shown} {flag.check[1]}")
        for field, wanted in flag.requires.items():
            if values.get(field) != wanted:
                other = next((f.flag for f in spec.flags if f.field == field), field)
                raise ConfigError(f"{name} with --method {spec.name} needs {other} {wanted}")
    return spec.build(**values)


def add_sweep_flags(parser: argparse.ArgumentParser, parse_values: Any) -> None:
    """Each method's axis flag (comma-separated values, default the axis's) and option flags
    (one value for every run of the methods that declare it; default: each method's own)."""
    axes: dict[str, list[tuple[MethodSpec, SweepAxis]]] = {}
    for spec in specs():
        if spec.sweep is not None:
            axes.setdefault(spec.sweep.flag, []).append((spec, spec.sweep))
    group = parser.add_argument_group("the values each method is swept over (comma-separated)")
    for flag, users in axes.items():
        axis = users[0][1]
        names = [axis.short, flag] if axis.short else [flag]
        listed = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in axis.values)
        action = group.add_argument(
            *names, dest=dest(flag), type=parse_values(axis.type), default=None,
            metavar="V1,V2,...",
            help=f"{axis.help}; for --methods {', '.join(s.name for s, _ in users)} "
                 f"(default {listed})")
        if axis.aliases:
            add_alias(group, action, *axis.aliases)
    takers: dict[str, list[str]] = {}
    for spec in specs():
        for option in spec.sweep_options if spec.sweep is not None else ():
            takers.setdefault(option.flag, []).append(spec.name)
    add_flags(parser, (
        (f"{spec.label} options (one value for every run)",
         tuple(replace(option, help=f"{option.help}; for --methods "
                                    f"{', '.join(takers[option.flag])}")
               for option in spec.sweep_options))
        for spec in specs() if spec.sweep is not None))


def sweep_grid_and_options(args: argparse.Namespace, methods: Iterable[str]
                           ) -> tuple[dict[str, tuple], dict[str, dict[str, Any]]]:
    """({method: values}, {method: {field: value}}) of the sweep flags the user gave."""
    grid: dict[str, tuple] = {}
    options: dict[str, dict[str, Any]] = {}
    for name in methods:
        spec = get(name)
        if spec.sweep is None:
            raise ConfigError(f"method {name!r} cannot be swept (it has no sweep axis); sweep "
                              f"one of {[s.name for s in specs() if s.sweep is not None]}.")
        values = getattr(args, dest(spec.sweep.flag), None)
        if values is not None:
            grid[name] = tuple(values)
        chosen = {flag.field: getattr(args, dest(flag.flag)) for flag in spec.sweep_options
                  if getattr(args, dest(flag.flag), None) is not None}
        if chosen:
            options[name] = chosen
    return grid, options
