"""Hooks that record, per tracked module, its inputs (forward) and its output gradients (backward).

Which modules are tracked ("sites"): walking the module tree from the root, a module whose exact
type has a rule (``rules.RULES``) is a rule site for its direct parameters; a module without a
rule that owns parameters directly becomes a torch.func fallback site for its whole subtree
(``fallback.py``); any other module is descended into. A module reachable by several paths is
one site. So every parameter belongs to a site: none is skipped silently.

Tied parameters (one tensor held by several modules, e.g. a decoder tied to an embedding) belong
to each of those sites, under their canonical name (the first in ``named_parameters()``). Their
per-sample gradient is the sum of every use's contribution, so for them the sites hand over
per-sample gradients (``per_sample.PER_SAMPLE`` or the fallback's), which ``Capture`` adds
before squaring. A module used both inside a fallback subtree and elsewhere is refused: the
fallback cannot tell its uses apart.

Output gradients come from tensor hooks registered on each output in the forward hook; a tensor
hook registered before an in-place change still receives the gradient of the value the module
returned, so ``ReLU(inplace=True)`` and ``out += shortcut`` after a layer are safe.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_map

from rdcompress.batches import ModelInputs
from rdcompress.errors import ConfigError, NonFiniteError, RDCompressError
from rdcompress.importance.fallback import CallRecord, fallback_per_sample, fallback_squares
from rdcompress.importance.per_sample import PER_SAMPLE, RuleCache
from rdcompress.importance.rules import (
    Rule,
    linear_from_squared_grads,
    linear_rule,
    rule_for,
    sample_chunks,
)


@dataclass
class Site:
    name: str                       # module path in the model ("" for the root)
    module: nn.Module
    rule: Rule | None               # None: torch.func fallback over the subtree
    params: dict[str, str]          # local parameter name -> full (canonical) name in the model
    tied: frozenset[str] = frozenset()  # full names also used by another site (see Capture)
    records: list[CallRecord] = field(default_factory=list)
    pending: dict[str, Tensor] = field(default_factory=dict)  # folded sums, by full name
    squared_grads: Tensor | None = None  # separable Linear: sum over directions of g^2 (N, out)
    cache: RuleCache = field(default_factory=dict)  # rule inputs reused across directions
    folded: bool = False  # this direction already folded from the backward hook (eager)

    @property
    def kind(self) -> str:
        name = type(self.module).__name__
        return name if self.rule else f"{name} (torch.func)"

    @property
    def separable(self) -> bool:
        """One 2-D call of a Linear: squared gradients can be summed over directions first."""
        return (self.rule is linear_rule and len(self.records) == 1 and not self.tied
                and self.records[0].args[0].dim() == 2)

    @property
    def eager(self) -> bool:
        """Can fold as soon as its output gradient arrives: one call, one output, own params."""
        return (self.rule is not None and not self.tied and len(self.records) == 1
                and len(self.records[0].grads) == 1)

    def add_direction(self) -> None:
        """Fold the output gradients of the latest backward pass into ``pending``."""
        if self.separable:
            grad = self.records[0].grads[0]
            if grad is not None:
                self.squared_grads = grad * grad if self.squared_grads is None \
                    else self.squared_grads.addcmul_(grad, grad)
            return
        for name, value in self.squares().items():
            if name in self.pending:
                self.pending[name] += value
            else:
                self.pending[name] = value

    def take(self) -> dict[str, Tensor]:
        """The sums folded since the last call: {full name: sum over samples and directions}."""
        if self.squared_grads is not None:
            x = _checked_input(self, self.records[0])
            local = linear_from_squared_grads(self.module, x, self.squared_grads)
            self.pending = {self.params[k]: v for k, v in local.items() if k in self.params}
        out, self.pending, self.squared_grads = self.pending, {}, None
        return out

    def squares(self) -> dict[str, Tensor]:
        """{full name: sum_n (d s_n / d param)^2} for untied params; {} if no call is live."""
        untied = [k for k, full in self.params.items() if full not in self.tied]
        if not untied:
            return {}
        if self.rule is None:
            with _fallback_errors(self):
                local = fallback_squares(self.module, self.records, untied)
        else:
            calls = self._live_calls()
            local = self.rule(self.module, calls, cache=self.cache) if calls else {}
        return {self.params[k]: v for k, v in local.items() if k in untied}

    def per_sample(self, part: slice) -> dict[str, Tensor]:
        """{full name: (n, *shape)} per-sample gradients of the tied params for samples part."""
        tied = [k for k, full in self.params.items() if full in self.tied]
        if not tied:
            return {}
        if self.rule is None:
            with _fallback_errors(self):
                local = fallback_per_sample(self.module, self.records, tied, part)
        else:
            calls = [(x[part], g[part]) for x, g in self._live_calls()]
            local = PER_SAMPLE[type(self.module)](self.module, calls) if calls else {}
        return {self.params[k]: v for k, v in local.items() if k in tied}

    def _live_calls(self) -> list[tuple[Tensor, Tensor]]:
        return [(_checked_input(self, record), record.grads[0]) for record in self.records
                if record.grads and record.grads[0] is not None]


@contextmanager
def _fallback_errors(site: Site) -> Iterator[None]:
    """Name the module when torch.func cannot run it (vmap, shapes, in-place kernels)."""
    try:
        yield
    except RDCompressError:
        raise
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as error:
        raise ConfigError(
            f"module {site.name or '<root>'!r} ({type(site.module).__name__}) has no per-layer "
            f"rule, and the torch.func fallback cannot run it per sample: {error}. The "
            "fallback needs a forward that works under torch.func.vmap, with samples on "
            "dimension 0 of its inputs and outputs; move its parameters into supported "
            "submodules (Linear, Conv, Embedding, norms) or make its forward vmap-compatible"
        ) from error


def _checked_input(site: Site, record: CallRecord) -> Tensor:
    x = record.args[0]
    if record.input_version is not None and x._version != record.input_version:
        raise ConfigError(f"the input of module {site.name!r} was modified in place after the "
                          "module ran; importance needs the value the module saw")
    return x


def plan_sites(model: nn.Module, wanted: set[str]) -> list[Site]:
    """Assign every wanted parameter to the sites that use it (see the module docstring).

    A module reachable by several paths is one site (its hooks see every call). A parameter
    held by several modules (tied weights) is listed in each of their sites, under its
    canonical name (the first in ``model.named_parameters()``), and marked ``tied``.
    """
    canonical = {id(p): name for name, p in model.named_parameters()}
    sites: list[Site] = []
    visited: dict[int, str] = {}   # module id -> its path
    in_fallback: dict[int, str] = {}  # module id -> path of the torch.func site containing it

    def visit(prefix: str, module: nn.Module) -> None:
        path = prefix.rstrip(".") or "<root>"
        if id(module) in visited:
            if id(module) in in_fallback:
                _shared_with_fallback(path, in_fallback[id(module)])
            return  # a shared submodule: its hooks already record every call
        visited[id(module)] = path
        rule = rule_for(module)
        direct = dict(module.named_parameters(recurse=False))
        if rule is None and direct:
            subtree = dict(module.named_modules(prefix=prefix.rstrip(".")))
            for sub in subtree.values():
                if sub is not module and id(sub) in visited:
                    _shared_with_fallback(visited[id(sub)], path)
            for sub_path, sub in subtree.items():
                visited[id(sub)] = sub_path or "<root>"
                in_fallback[id(sub)] = path
            _add(prefix, module, None, dict(module.named_parameters()))
            return
        if rule is not None:
            _add(prefix, module, rule, direct)
        for child_name, child in module.named_children():
            visit(f"{prefix}{child_name}.", child)

    def _add(prefix: str, module: nn.Module, rule: Rule | None,
             params: dict[str, nn.Parameter]) -> None:
        mapping = {local: canonical[id(p)] for local, p in params.items()
                   if canonical[id(p)] in wanted}
        if mapping:
            sites.append(Site(prefix.rstrip("."), module, rule, mapping))

    visit("", model)
    uses = Counter(full for site in sites for full in set(site.params.values()))
    for site in sites:
        site.tied = frozenset(full for full in site.params.values() if uses[full] > 1)
    return sites


def _shared_with_fallback(path: str, fallback_path: str) -> None:
    raise ConfigError(
        f"module {path!r} is also used inside module {fallback_path or '<root>'!r}, which has "
        "no per-layer rule and is handled by torch.func as a whole; importance cannot tell "
        "those uses apart. Give the module its own copy, or move the parameters of "
        f"{fallback_path or '<root>'!r} into supported submodules (Linear, Conv, norms, ...)")


class Capture:
    """Install recording hooks on the sites; ``clear()`` between forwards."""

    def __init__(self, sites: list[Site]) -> None:
        self.sites = sites
        self.active = True
        self.batch_size = 0  # N of the current forward (compute.py sets it)
        self.tied_pending: dict[str, Tensor] = {}  # tied parameters' folded sums
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

    def add_direction(self, num_samples: int) -> None:
        """Fold the latest backward pass into every site; tied parameters add the per-sample
        gradients of all their sites before squaring (chunked over samples).

        The recording hooks are off meanwhile: the torch.func fallback calls its module again
        (under vmap), and that call must not be recorded as one of the forward's."""
        active, self.active = self.active, False
        try:
            self._add_direction(num_samples)
        finally:
            self.active = active

    def _add_direction(self, num_samples: int) -> None:
        for site in self.sites:
            if not site.folded:
                site.add_direction()
            site.folded = False
        tied_sites = [site for site in self.sites if site.tied]
        if not tied_sites:
            return
        numel = sum(p.numel() for site in tied_sites for p in site.module.parameters())
        for part in sample_chunks(num_samples, numel):
            total: dict[str, Tensor] = {}
            for site in tied_sites:
                for name, grad in site.per_sample(part).items():  # (n, *shape)
                    total[name] = total[name] + grad if name in total else grad
            for name, grad in total.items():
                square = (grad * grad).sum(0)
                self.tied_pending[name] = self.tied_pending[name] + square \
                    if name in self.tied_pending else square

    def take(self) -> dict[str, Tensor]:
        """{full name: sum over samples and directions} folded since the last ``take``."""
        out: dict[str, Tensor] = {}
        for site in self.sites:
            out.update(site.take())
        out.update(self.tied_pending)
        self.tied_pending = {}
        return out

    def clear(self) -> None:
        for site in self.sites:
            site.records.clear()
            site.cache.clear()
            site.pending, site.squared_grads = {}, None
        self.tied_pending = {}

    def clear_grads(self) -> None:
        for site in self.sites:
            site.folded = False
            for record in site.records:
                record.grads = [None] * len(record.grads)

    def _hook(self, site: Site):
        def hook(module: nn.Module, args: tuple, kwargs: dict, output: object) -> object:
            if not self.active:
                return None
            args, output = _expand_shared(site, args, output, self.batch_size)
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
                    tensor.register_hook(_grad_setter(site, record, index))
            site.records.append(record)
            return output
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


def _expand_shared(site: Site, args: tuple, output: object, batch_size: int
                   ) -> tuple[tuple, object]:
    """A rule site called on an input with batch dimension 1 inside a batch of N > 1 (e.g.
    ``position_ids`` of shape (1, L), whose output is broadcast over the batch): every sample
    uses that one call, and autograd would sum their output gradients before the hook sees
    them, giving (sum_n g_n)^2 instead of sum_n g_n^2. Expanding the input and the output to N
    rows (broadcasting gives the same values downstream) keeps one output gradient per sample,
    so the rule is exact. Code that relies on the output's batch dimension being 1 (e.g.
    ``out.squeeze(0)``) would see N rows instead."""
    if (site.rule is None or batch_size <= 1 or not args or not isinstance(args[0], Tensor)
            or args[0].dim() == 0 or args[0].shape[0] != 1 or not isinstance(output, Tensor)
            or output.dim() == 0 or output.shape[0] != 1):
        return args, output
    expanded = args[0].expand(batch_size, *args[0].shape[1:])
    # The output is copied, not a view: code after the module may change it in place.
    return (expanded, *args[1:]), output.expand(batch_size, *output.shape[1:]).contiguous()


def _detach(value: object) -> object:
    return value.detach() if isinstance(value, Tensor) else value


def _grad_setter(site: Site, record: CallRecord, index: int):
    """Store the output gradient; an eager site folds it at once, while it is in cache, and
    lets it go (the backward pass then never holds every layer's output gradient at once)."""
    def setter(grad: Tensor) -> None:
        record.grads[index] = grad
        if site.eager:
            site.add_direction()
            site.folded = True
            if not site.separable:
                record.grads[index] = None
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


def locate_non_finite(model: nn.Module, inputs: Tensor | ModelInputs) -> NonFiniteError:
    """Run the forward again and name the first module whose output is NaN or inf."""
    if isinstance(inputs, Tensor):
        inputs = ModelInputs((inputs,))
    if any(t.is_floating_point() and not torch.isfinite(t).all() for t in inputs.tensors()):
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
            inputs(model)
    finally:
        for handle in handles:
            handle.remove()
    where = found[0] if found else "the model's forward (outside any submodule)"
    return NonFiniteError(f"the model's output contains NaN or inf; it first appeared in the "
                          f"output of module {where}. Check that module's weights and inputs")
