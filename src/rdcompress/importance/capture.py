"""Hooks that record, per tracked module, its inputs (forward) and its output gradients (backward).

Which modules are tracked ("sites"): walking the module tree from the root, a module whose exact
type has a rule (``rules.RULES``) is a rule site for its direct parameters; a module without a
rule that owns parameters directly becomes a torch.func fallback site for its whole subtree
(``fallback.py``); any other module is descended into. So every parameter belongs to exactly one
site: none is skipped silently.

Output gradients come from tensor hooks registered on each output in the forward hook; a tensor
hook registered before an in-place change still receives the gradient of the value the module
returned, so ``ReLU(inplace=True)`` and ``out += shortcut`` after a layer are safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_map

from rdcompress.errors import ConfigError, NonFiniteError
from rdcompress.importance.fallback import CallRecord, fallback_squares
from rdcompress.importance.rules import Rule, linear_from_squared_grads, linear_rule, rule_for


@dataclass
class Site:
    name: str                       # module path in the model ("" for the root)
    module: nn.Module
    rule: Rule | None               # None: torch.func fallback over the subtree
    params: dict[str, str]          # local parameter name -> full name in the model
    records: list[CallRecord] = field(default_factory=list)
    pending: dict[str, Tensor] = field(default_factory=dict)  # folded sums, by full name
    squared_grads: Tensor | None = None  # separable Linear: sum over directions of g^2 (N, out)

    @property
    def kind(self) -> str:
        name = type(self.module).__name__
        return name if self.rule else f"{name} (torch.func)"

    @property
    def separable(self) -> bool:
        """One 2-D call of a Linear: squared gradients can be summed over directions first."""
        return (self.rule is linear_rule and len(self.records) == 1
                and self.records[0].args[0].dim() == 2)

    def add_direction(self) -> None:
        """Fold the output gradients of the latest backward pass into ``pending``."""
        if self.separable:
            grad = self.records[0].grads[0]
            if grad is not None:
                self.squared_grads = grad * grad if self.squared_grads is None \
                    else self.squared_grads.addcmul_(grad, grad)
            return
        for name, value in self.squares().items():
            self.pending[name] = self.pending[name] + value if name in self.pending else value

    def take(self) -> dict[str, Tensor]:
        """The sums folded since the last call: {full name: sum over samples and directions}."""
        if self.squared_grads is not None:
            x = _checked_input(self, self.records[0])
            local = linear_from_squared_grads(self.module, x, self.squared_grads)
            self.pending = {self.params[k]: v for k, v in local.items() if k in self.params}
        out, self.pending, self.squared_grads = self.pending, {}, None
        return out

    def squares(self) -> dict[str, Tensor]:
        """{full name: sum_n (d s_n / d param)^2} from the recorded calls; {} if none live."""
        if self.rule is None:
            local = fallback_squares(self.module, self.records, list(self.params))
        else:
            calls = []
            for record in self.records:
                if record.grads and record.grads[0] is not None:
                    calls.append((_checked_input(self, record), record.grads[0]))
            local = self.rule(self.module, calls) if calls else {}
        return {self.params[k]: v for k, v in local.items() if k in self.params}


def _checked_input(site: Site, record: CallRecord) -> Tensor:
    x = record.args[0]
    if record.input_version is not None and x._version != record.input_version:
        raise ConfigError(f"the input of module {site.name!r} was modified in place after the "
                          "module ran; importance needs the value the module saw")
    return x


def plan_sites(model: nn.Module, wanted: set[str]) -> list[Site]:
    """Assign every wanted parameter to one site (see the module docstring)."""
    sites: list[Site] = []
    owners: dict[int, str] = {}

    def visit(prefix: str, module: nn.Module) -> None:
        rule = rule_for(module)
        direct = dict(module.named_parameters(recurse=False))
        if rule is None and direct:
            subtree = dict(module.named_parameters(remove_duplicate=False))
            _add(prefix, module, None, subtree)
            return
        if rule is not None:
            _add(prefix, module, rule, direct)
        for child_name, child in module.named_children():
            visit(f"{prefix}{child_name}.", child)

    def _add(prefix: str, module: nn.Module, rule: Rule | None,
             params: dict[str, nn.Parameter]) -> None:
        mapping: dict[str, str] = {}
        for local, param in params.items():
            full = prefix + local
            if id(param) in owners and owners[id(param)] != full:
                raise ConfigError(f"parameter {full!r} is the same tensor as {owners[id(param)]!r}"
                                  " (tied weights); tied parameters are not supported yet")
            owners[id(param)] = full
            if full in wanted:
                mapping[local] = full
        if mapping:
            sites.append(Site(prefix.rstrip("."), module, rule, mapping))

    visit("", model)
    return sites


class Capture:
    """Install recording hooks on the sites; ``clear()`` between forwards."""

    def __init__(self, sites: list[Site]) -> None:
        self.sites = sites
        self.active = True
        self._handles: list = []

    def __enter__(self) -> Capture:
        for site in self.sites:
            self._handles.append(
                site.module.register_forward_hook(self._hook(site), with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.clear()

    def clear(self) -> None:
        for site in self.sites:
            site.records.clear()
            site.pending, site.squared_grads = {}, None

    def clear_grads(self) -> None:
        for site in self.sites:
            for record in site.records:
                record.grads = [None] * len(record.grads)

    def _hook(self, site: Site):
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: object) -> None:
            if not self.active:
                return
            in_leaves = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, Tensor)]
            outs = [t for t in tree_flatten(output)[0]
                    if isinstance(t, Tensor) and t.is_floating_point()]
            detached_args = tree_map(_detach, args)
            record = CallRecord(
                args=detached_args, kwargs=tree_map(_detach, kwargs),
                out_shapes=[(t.shape, t.dtype) for t in outs], grads=[None] * len(outs),
                input_requires_grad=any(t.requires_grad for t in in_leaves))
            if site.rule is not None and args and isinstance(args[0], Tensor):
                record.input_version = args[0]._version
            for index, tensor in enumerate(outs):
                if tensor.requires_grad:
                    tensor.register_hook(_grad_setter(record, index))
            site.records.append(record)
        return hook

    def backward_targets(self) -> list[Tensor]:
        """Parameters of sites whose input does not depend on any trainable parameter.

        Asking autograd for these (rather than every parameter) makes the backward pass reach
        every tracked output while skipping the weight-gradient products of deeper layers.
        """
        targets: dict[int, Tensor] = {}
        for site in self.sites:
            if any(not record.input_requires_grad for record in site.records):
                # One parameter suffices to pull the gradient through the site's outputs; the
                # smallest (a bias) keeps autograd from forming a large weight gradient.
                trainable = [p for p in site.module.parameters() if p.requires_grad]
                if trainable:
                    smallest = min(trainable, key=lambda p: p.numel())
                    targets[id(smallest)] = smallest
        return list(targets.values())


def _detach(value: object) -> object:
    return value.detach() if isinstance(value, Tensor) else value


def _grad_setter(record: CallRecord, index: int):
    def setter(grad: Tensor) -> None:
        record.grads[index] = grad
    return setter


@contextmanager
def eval_mode(model: nn.Module, trainable: list[nn.Parameter]) -> Iterator[None]:
    """Eval mode (dropout off, BatchNorm running stats) and requires_grad on ``trainable``."""
    modes = {module: module.training for module in model.modules()}
    flags = [(param, param.requires_grad) for param in trainable]
    model.eval()
    for param, _ in flags:
        param.requires_grad_(True)
    try:
        yield
    finally:
        for module, mode in modes.items():
            module.training = mode
        for param, flag in flags:
            param.requires_grad_(flag)


def locate_non_finite(model: nn.Module, inputs: Tensor) -> NonFiniteError:
    """Run the forward again and name the first module whose output is NaN or inf."""
    if not torch.isfinite(inputs).all():
        return NonFiniteError("the calibration inputs contain NaN or inf; check the data loader")
    found: list[str] = []
    names = {module: name for name, module in model.named_modules()}

    def hook(module: nn.Module, args: tuple, output: object) -> None:
        if found:
            return
        for tensor in tree_flatten(output)[0]:
            if isinstance(tensor, Tensor) and tensor.is_floating_point() \
                    and not torch.isfinite(tensor).all():
                found.append(f"{names[module] or '<root>'} ({type(module).__name__})")
                return

    handles = [module.register_forward_hook(hook) for module in model.modules()]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    where = found[0] if found else "the model's forward (outside any submodule)"
    return NonFiniteError(f"the model's output contains NaN or inf; it first appeared in the "
                          f"output of module {where}. Check that module's weights and inputs")
