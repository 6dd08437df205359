"""Check that every tracked parameter is used only inside the module(s) that own it.

The per-layer rules and the torch.func fallback see a parameter through its module's calls
(``capture.py``). A weight also used elsewhere in ``forward`` -- ``F.linear(h, self.fc.weight)``
as a tied output layer does -- gets a gradient the hooks never see, and the importance would be
silently wrong (relative errors of 0.5-0.97 on real models). ``check_parameter_uses`` runs one
forward under a ``TorchFunctionMode`` that sees every tensor operation, tracks which site module
is running (forward pre-/post-hooks), and refuses any operation on a tracked parameter made
while none of its owning sites is the innermost running site.

Only operations that can carry a gradient count: metadata (``weight.shape``, ``.dtype``,
``.size()``) and anything under ``torch.no_grad()`` are ignored. The check costs one forward
with Python dispatch per operation, so ``compute.py`` runs it on the first chunk only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from rdcompress.errors import ConfigError

# Methods that read metadata only: no gradient flows through them.
_METADATA = frozenset({"size", "dim", "numel", "stride", "is_floating_point", "is_complex",
                       "data_ptr", "element_size", "nelement", "ndimension", "__len__",
                       "is_contiguous", "storage_offset", "get_device", "__format__",
                       "__repr__", "__hash__", "__bool__", "__eq__", "dtype", "shape",
                       "device", "requires_grad", "is_leaf", "grad_fn", "_version",
                       "data", "detach", "__get__"})


class _UseMode(TorchFunctionMode):
    def __init__(self, owners: dict[int, tuple[str, set[int]]], stack: list[tuple[int, str]]
                 ) -> None:
        super().__init__()
        self.owners = owners      # id(param) -> (full name, ids of the sites owning it)
        self.stack = stack        # running sites, innermost last: (id(module), path)
        self.found: tuple[str, str, str] | None = None  # (param, where used, function)

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        if self.found is None and torch.is_grad_enabled() \
                and getattr(func, "__name__", "") not in _METADATA:
            for value in tree_flatten((args, kwargs or {}))[0]:
                owner = self.owners.get(id(value)) if isinstance(value, Tensor) else None
                if owner is None:
                    continue
                name, sites = owner
                if not self.stack or self.stack[-1][0] not in sites:
                    where = f"the forward of {self.stack[-1][1]!r}" if self.stack \
                        else "the model's own forward"
                    self.found = (name, where, getattr(func, "__name__", repr(func)))
                    break
        return func(*args, **(kwargs or {}))


def check_parameter_uses(sites: list, run: Callable[[], object]) -> None:
    """Run ``run()`` (one forward) and raise ConfigError naming the first tracked parameter used
    outside the modules that own it. ``sites`` are ``capture.Site`` objects."""
    owners: dict[int, tuple[str, set[int]]] = {}
    for site in sites:
        params = dict(site.module.named_parameters()) if site.rule is None \
            else dict(site.module.named_parameters(recurse=False))
        for local, full in site.params.items():
            param = params[local]
            owners.setdefault(id(param), (full, set()))[1].add(id(site.module))
    if not owners:
        return
    stack: list[tuple[int, str]] = []
    handles = []

    def leave(module: object, args: object, output: object) -> None:
        if stack:
            stack.pop()  # returns None: a forward hook's return value replaces the output

    def enter(path: str) -> Callable[[object, object], None]:
        def hook(module: object, args: object) -> None:
            stack.append((id(module), path))  # returns None: the arguments stay as they are
        return hook

    for site in sites:
        handles.append(site.module.register_forward_pre_hook(enter(site.name or "<root>")))
        handles.append(site.module.register_forward_hook(leave))
    mode = _UseMode(owners, stack)
    try:
        with mode:
            run()
    finally:
        for handle in handles:
            handle.remove()
    if mode.found is not None:
        name, where, func = mode.found
        raise ConfigError(
            f"parameter {name!r} is also used outside the module that owns it (by {func} in "
            f"{where}), e.g. F.linear(h, self.fc.weight) in forward; the per-layer hooks "
            "cannot see that use, so its importance would be wrong. Route every use through "
            "the module (call self.fc(h), or tie weights by assigning the same Parameter to two "
            "modules, which is supported)")

