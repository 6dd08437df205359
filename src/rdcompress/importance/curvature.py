"""Generalized Gauss-Newton machinery: per-sample gradients of J_nᵀ u and piecewise-linearity.

For cross-entropy on logits z (C,) at temperature T, the Hessian of L_n with respect to the logits
is (diag(p) − ppᵀ)/T², p = softmax(z/T), whatever the label. It has rank C − 1 and factors as
S Sᵀ with S (C, C − 1) its closed-form Cholesky factor (`logit_hessian_factor`; the square
root (diag(√p) − p √pᵀ)/T would do too, with C columns), so the generalized Gauss-Newton
G_n = J_nᵀ S Sᵀ J_n (J_n = ∂z/∂w of sample n) has the diagonal

    diag(G_n) = Σ_c (J_nᵀ s_c)²             exactly, with C − 1 backward passes, and
    E_ε (J_nᵀ S ε)² = diag(G_n)             with one pass (curvature propagation, Martens 2012).

When every layer is affine in its own parameters and every nonlinearity is piecewise linear
(ReLU, max-pool, eval BatchNorm, ...), z is locally linear in each parameter tensor taken alone,
so the residual term Σ_k ∂L/∂z_k · ∂²z_k/∂w_i² vanishes and diag(G_n) = diag(∂²L_n/∂w²) exactly.

This module provides the per-sample vector-Jacobian products J_nᵀ u_n:
- a fast path with forward hooks and an explicit per-layer-type kernel table (`KERNELS`: Linear,
  Conv1d/2d incl. groups/stride/dilation/padding modes, eval BatchNorm), which turns one batched
  backward pass into per-sample gradients (Linear with 2-D input even stays factored: per-sample
  squares are g² ⊗ x², never an (N, out, in) tensor; Conv: one grouped weight-gradient conv).
  Padded conv inputs and x̂ are prepared once per forward and reused by every pass (up to
  CONTEXT_BUDGET elements). The first pass is
  checked against autograd's batch gradient (`HookMismatch` if a weight is used outside its
  module or a layer input is changed in place);
- a `torch.func` fallback (vmap of grad) for parameters of any other module type;
and the piecewise-linearity test (`piecewise_linear_reason`) that decides when the GGN is exact.
Cross-entropy ignores a per-sample shift of the logits (S annihilates the all-ones vector, and so
does the gradient (p − y)/T), so only the centred logits must be locally linear.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, jvp, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from rdcompress.errors import ModelError
from rdcompress.importance.directions import multinomial_cov_columns
from rdcompress.importance.per_sample import conv_explicit_padding, conv_weight_per_sample

# --------------------------------------------------------------------------------------------
# Tables of module types
# --------------------------------------------------------------------------------------------

# Modules known to be piecewise linear in their input (parameter-free; dropout in eval mode).
# Documentation and a fast answer; types in neither table go to the numerical check below.
PIECEWISE_LINEAR_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d,
    nn.ConstantPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReplicationPad1d,
    nn.ReplicationPad2d, nn.Upsample, nn.PixelShuffle, nn.PixelUnshuffle, nn.ChannelShuffle,
    # with parameters, affine in them; no hook kernel (their parameters use torch.func)
    nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.PReLU,
    nn.Embedding,
)
# Modules known NOT to be piecewise linear: the Gauss-Newton misses the residual term.
# (Not LogSoftmax: as the last layer it only shifts each sample's logits by a constant, which
# the cross-entropy ignores; the numerical check, on centred logits, accepts it there.)
NONLINEAR_MODULES: tuple[type[nn.Module], ...] = (
    nn.Tanh, nn.Sigmoid, nn.Hardsigmoid, nn.GELU, nn.SiLU, nn.Mish, nn.ELU, nn.CELU, nn.SELU,
    nn.GLU, nn.Softplus, nn.Softsign, nn.Tanhshrink, nn.LogSigmoid, nn.Hardswish,
    nn.Softmax, nn.Softmin, nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d,
    nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LocalResponseNorm, nn.RMSNorm,
    nn.MultiheadAttention, nn.Bilinear, nn.RNN, nn.LSTM, nn.GRU, nn.Transformer,
    nn.TransformerEncoderLayer, nn.TransformerDecoderLayer,
)
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
CONTEXT_BUDGET = 1 << 27  # elements of prepared inputs kept across backward passes (~512 MiB f32)


# Each kernel is a pair: prepare(module, input) -> context, computed once per forward and
# reused by every backward pass, and grads(module, context, grad of output) -> {attr: value},
# a value being a per-sample gradient (N, *param.shape) or a rank-one factor pair (g, x).

def _linear_prepare(module: nn.Linear, x: Tensor) -> Tensor:
    return x  # (N, ..., in)


def _linear_grads(module: nn.Linear, x: Tensor, g: Tensor) -> dict[str, Tensor | tuple]:
    """Per-sample gradients of a Linear layer. x: (N, ..., in), g: (N, ..., out)."""
    out: dict[str, Tensor | tuple] = {}
    if x.dim() == 2:
        # J_nᵀu for the weight is the rank one g_n x_nᵀ: kept factored as (g, x), (N, out), (N, in).
        out["weight"] = (g, x)
    else:
        out["weight"] = torch.einsum("nto,nti->noi", g.flatten(1, -2), x.flatten(1, -2))
    if module.bias is not None:
        out["bias"] = g if g.dim() == 2 else g.flatten(1, -2).sum(1)  # (N, out)
    return out


def _conv_prepare(module: nn.Conv1d | nn.Conv2d, x: Tensor) -> Tensor:
    """The input padded as the conv pads it beyond plain zeros ("same", reflect, ...)."""
    widths, mode, _ = conv_explicit_padding(module)
    return x if widths is None else F.pad(x, widths, mode=mode)


def _conv_grads(module: nn.Conv1d | nn.Conv2d, x: Tensor, g: Tensor
                ) -> dict[str, Tensor | tuple]:
    """Per-sample gradients of Conv1d/Conv2d: one grouped weight-gradient convolution
    (``per_sample.conv_weight_per_sample``; about 5x faster than unfold + einsum on ResNet-20).
    x: (N, Cin, *S) from ``_conv_prepare``, g: (N, O, *S_out)."""
    padding = conv_explicit_padding(module)[2]
    out: dict[str, Tensor | tuple] = {"weight": conv_weight_per_sample(module, x, padding, g)}
    if module.bias is not None:
        out["bias"] = g.flatten(2).sum(2)  # (N, O)
    return out


def _batchnorm_prepare(module: _BatchNorm, x: Tensor) -> Tensor:
    """x̂ = (x − running mean) / √(running var + eps), (N, C, *S)."""
    mean, var = module.running_mean, module.running_var
    if mean is None or var is None:  # excluded by check_samples_independent
        raise ModelError(f"{type(module).__name__} has no running statistics")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + module.eps)


def _batchnorm_grads(module: _BatchNorm, x_hat: Tensor, g: Tensor) -> dict[str, Tensor | tuple]:
    """Per-sample gradients of an eval BatchNorm: y = x̂ γ + β. x_hat, g: (N, C, *S)."""
    out: dict[str, Tensor | tuple] = {}
    if module.weight is not None:
        out["weight"] = (g * x_hat).flatten(2).sum(2) if g.dim() > 2 else g * x_hat  # (N, C)
    if module.bias is not None:
        out["bias"] = g.flatten(2).sum(2) if g.dim() > 2 else g  # (N, C)
    return out


# prepare(module, input) -> context; grads(module, context, grad_output) -> {attr: value}
KernelPair = tuple[Callable[..., Tensor], Callable[..., dict]]
KERNELS: dict[type[nn.Module], KernelPair] = {
    nn.Linear: (_linear_prepare, _linear_grads),
    nn.Conv1d: (_conv_prepare, _conv_grads),
    nn.Conv2d: (_conv_prepare, _conv_grads),
    nn.BatchNorm1d: (_batchnorm_prepare, _batchnorm_grads),
    nn.BatchNorm2d: (_batchnorm_prepare, _batchnorm_grads),
    nn.BatchNorm3d: (_batchnorm_prepare, _batchnorm_grads),
}


def _batchnorm_uses_running_stats(module: nn.Module) -> bool:
    return not module.training and module.running_mean is not None


def check_samples_independent(model: nn.Module) -> None:
    """Raise ModelError when a BatchNorm normalizes with batch statistics (samples coupled)."""
    for name, module in model.named_modules():
        if isinstance(module, _BATCHNORMS) and not _batchnorm_uses_running_stats(module):
            raise ModelError(
                f"module {name!r} ({type(module).__name__}) normalizes with batch statistics "
                "(track_running_stats=False), so per-sample losses are coupled and their "
                "Hessians undefined; rebuild it with track_running_stats=True")


def kernel_modules(model: nn.Module, trainable: Mapping[str, Tensor]) -> list[nn.Module] | None:
    """Modules whose hook kernels cover every trainable parameter, or None if some are not."""
    owner_ids: set[int] = set()
    modules = []
    for module in model.modules():
        if type(module) not in KERNELS:
            continue
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if own:
            modules.append(module)
            owner_ids.update(id(p) for p in own)
    if any(id(p) not in owner_ids for p in trainable.values()):
        return None
    return modules


# --------------------------------------------------------------------------------------------
# Piecewise linearity: table first, then a numerical check of ∂²z/∂t² along w + t·v
# --------------------------------------------------------------------------------------------

_PL_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
PL_CHECK_SAMPLES = 16  # real samples in the numerical check (plus as many noisy copies)


def _check_inputs(example: Tensor) -> Tensor:
    """Up to PL_CHECK_SAMPLES samples of ``example`` and, for floating inputs, a copy of them
    plus Gaussian noise at the batch's scale: a nonlinearity that is inactive on every given
    sample (dead ReLUs in front of it, blank images) is likely active on some noisy copy. The
    noise is seeded, so the answer is reproducible."""
    x = example[:PL_CHECK_SAMPLES]
    if not x.is_floating_point() or x.numel() == 0:
        return x
    scale = float(x.double().std()) if x.numel() > 1 else 0.0
    scale = scale if scale > 0 else 1.0
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x) * scale
    return torch.cat([x, x + noise])


def _table_reason(model: nn.Module) -> str | None:
    """The first module of a known nonlinear type, as a reason, or None."""
    for name, module in model.named_modules():
        if isinstance(module, NONLINEAR_MODULES):
            return f"module {name!r} of type {type(module).__name__} is not piecewise linear"
    return None


def _numerical_reason(model: nn.Module, x: Tensor, trainable: Mapping[str, Tensor]) -> str | None:
    """Check d²z̄(w + t v)/dt² = 0 at t = 0 for a random v in each parameter tensor alone.

    z̄ = z − mean_c z: cross-entropy at any temperature ignores a per-sample shift of the logits
    (its gradient (p − y)/T and Hessian diag(p) − ppᵀ both annihilate the all-ones vector), so
    only the centred logits need to be locally linear; a final LogSoftmax passes. Catches
    nonlinearities called functionally in forward() (F.gelu, torch.tanh, x * y), which the module
    table cannot see. Zero up to round-off for a locally linear map; O(1) otherwise.
    """
    gen = torch.Generator().manual_seed(0)
    eps = torch.finfo(x.dtype).eps if x.is_floating_point() else 1e-7
    for name, p in trainable.items():
        rms = p.detach().pow(2).mean().sqrt().item() or 1.0
        v = (torch.randn(p.shape, generator=gen, dtype=torch.float64) * rms).to(p)

        def logits_of(value: Tensor, name: str = name) -> Tensor:
            logits = functional_call(model, {name: value}, (x,))      # (n, C)
            return logits - logits.mean(1, keepdim=True)

        def first(value: Tensor, v: Tensor = v, f: Callable = logits_of) -> Tensor:
            return jvp(f, (value,), (v,))[1]

        try:
            with torch.no_grad():  # forward-mode AD only: no autograd graph needed
                z = logits_of(p.detach())
                dz, d2z = jvp(first, (p.detach(),), (v,))[:2]
        except NotImplementedError:  # e.g. F.silu: its derivative has no forward-mode rule
            z, dz, d2z = _reverse_directional(logits_of, p.detach(), v, gen)
        scale = float(z.abs().max() + dz.detach().abs().max()) + 1e-30
        if float(d2z.detach().abs().max()) > 1e3 * eps * scale:
            return (f"the logits are not locally linear in parameter {name!r} "
                    "(a nonlinearity such as tanh, GELU, softmax or a product of activations)")
    return None


def _reverse_directional(f: Callable[[Tensor], Tensor], p: Tensor, v: Tensor,
                         gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(z, u ⊙ dz/dt, u ⊙ d²z/dt²) of z(t) = f(p + t v) at t = 0, by reverse over reverse
    through a scalar t, for functions without forward-mode derivatives. u is a random ±1
    weighting of the logits (the second derivative of Σ u ⊙ z is almost surely nonzero when
    d²z/dt² is); elementwise so the caller's scale test reads the same."""
    with torch.enable_grad():
        t = torch.zeros((), dtype=p.dtype, device=p.device, requires_grad=True)
        z = f(p + t * v)
        u = (torch.randint(0, 2, z.shape, generator=gen) * 2 - 1).to(z)
        (first,) = torch.autograd.grad((u * z).sum(), t, create_graph=True)
        (second,) = torch.autograd.grad(first, t, allow_unused=True)
    second = torch.zeros_like(first) if second is None else second
    zeros = torch.zeros_like(z)
    return z.detach(), (zeros + first.detach()), (zeros + second.detach())


def piecewise_linear_reason(model: nn.Module, example: Tensor,
                            trainable: Mapping[str, Tensor]) -> str | None:
    """None if the GGN diagonal equals the Hessian diagonal for this model, else the reason.

    A module of a type in NONLINEAR_MODULES decides at once. Otherwise (known piecewise-linear
    types, and custom modules such as a ResNet's padding shortcut) a numerical check decides on
    the first PL_CHECK_SAMPLES samples of ``example`` and noisy copies of them
    (``_check_inputs``): it also catches nonlinear functions called in forward(). Checking only
    two samples was fooled by a nonlinearity inactive on both (behind dead ReLUs); a
    nonlinearity inactive on every checked sample and every noisy copy can still be missed.
    Cached per model (keyed by module types, parameter shapes and training flags).
    """
    signature = tuple((n, type(m), m.training) for n, m in model.named_modules()) + tuple(
        (n, tuple(p.shape)) for n, p in trainable.items())
    cached = _PL_CACHE.get(model)
    if cached is not None and cached[0] == signature:
        return cached[1]
    reason = _table_reason(model)
    if reason is None:
        reason = _numerical_reason(model, _check_inputs(example), trainable)
    _PL_CACHE[model] = (signature, reason)
    return reason


# --------------------------------------------------------------------------------------------
# Per-sample J_nᵀ u_n: hook engine and torch.func engine
# --------------------------------------------------------------------------------------------

def logit_hessian_factor(logits: Tensor, temperature: float) -> Tensor:
    """S with S Sᵀ = ∂²L/∂z² = (diag(p) − ppᵀ)/T². logits: (N, C) -> (N, C, max(C−1, 1)).

    The Hessian has rank C − 1 (it annihilates the all-ones vector), so its closed-form
    Cholesky factor (``directions.multinomial_cov_columns``) has C − 1 columns: the exact GGN
    needs C − 1 backward passes, and curvature propagation draws ε ∈ {±1}^(C−1)."""
    p = torch.softmax(logits / temperature, dim=1)       # (N, C)
    return torch.stack(list(multinomial_cov_columns(p)), dim=2) / temperature


@dataclass
class _Call:
    module: nn.Module
    input: Tensor       # (N, ...), the module's input as seen in forward
    output: Tensor      # (N, ...), the module's output, before any in-place op downstream
    version: int        # input._version at capture, to detect in-place changes


@contextmanager
def _capture(modules: list[nn.Module]) -> Iterator[list[_Call]]:
    """Record each call of ``modules``; hand a clone downstream so in-place ops (ReLU(inplace),
    `out += identity`) cannot rewrite the tensor whose gradient we ask for."""
    calls: list[_Call] = []

    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        calls.append(_Call(module, args[0], output, args[0]._version))
        return output.clone()

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


class HookMismatch(Exception):
    """The hook kernels cannot reproduce this model's gradients; use the torch.func engine."""


def _verify_batch_gradient(per_sample: Mapping[str, Tensor | tuple],
                           batch: Mapping[str, Tensor | None]) -> None:
    for name, expected in batch.items():
        value = per_sample.get(name)
        if value is None:
            total = None
        elif isinstance(value, tuple):
            total = value[0].T @ value[1]   # Σ_n g_n x_nᵀ, (out, in)
        else:
            total = value.sum(0)
        if total is None and expected is None:
            continue
        if total is None or expected is None:  # used by autograd but not seen, or vice versa
            total = torch.zeros(()) if total is None else total.cpu()
            expected = torch.zeros_like(total) if expected is None else expected.cpu()
        tolerance = 1e3 * torch.finfo(expected.dtype).eps * float(expected.abs().max() + 1e-30)
        if float((total - expected).abs().max()) > tolerance:
            raise HookMismatch(f"parameter {name!r} is used where the hooks cannot see it")


class HookedGGN:
    """One forward pass with hooks; then `per_sample_grads(u)` = {name: J_nᵀ u_n per sample}.

    Values are (N, *shape) tensors, or (g, x) rank-one factors (N, out), (N, in) for a Linear
    weight used once on 2-D input. Free with `free()` (or let it go out of scope).
    """

    def __init__(self, model: nn.Module, modules: list[nn.Module], inputs: Tensor,
                 param_names: dict[int, str]):
        with _capture(modules) as calls:
            self.logits = model(inputs)                   # (N, C)
        self.calls = calls
        self.param_names = param_names
        uses: dict[int, int] = {}
        for call in calls:
            for p in call.module.parameters(recurse=False):
                uses[id(p)] = uses.get(id(p), 0) + 1
        self._uses = uses
        self._contexts: dict[int, Tensor] = {}  # call index -> prepared input (unfolded, x̂)
        self._cached = 0

    def per_sample_grads(self, u: Tensor, last: bool,
                         verify: Mapping[str, Tensor] | None = None
                         ) -> dict[str, Tensor | tuple]:
        """{name: J_nᵀ u_n} for u (N, C). With ``verify`` (the trainable parameters), also ask
        autograd for the batch gradient Σ_n J_nᵀ u_n and raise HookMismatch unless the hooks
        reproduce it: catches a weight also used outside its module (F.linear(h, fc.weight))."""
        outputs = [c.output for c in self.calls]
        params = list(verify.values()) if verify is not None else []
        grads = torch.autograd.grad(self.logits, outputs + params, grad_outputs=u,
                                    retain_graph=not last, allow_unused=True)
        result: dict[str, Tensor | tuple] = {}
        for index, (call, g) in enumerate(zip(self.calls, grads[:len(outputs)], strict=True)):
            if g is None:
                g = torch.zeros_like(call.output)
            if call.input._version != call.version:
                raise HookMismatch(f"the input of a {type(call.module).__name__} was modified "
                                   "in place after the layer used it")
            prepare, kernel = KERNELS[type(call.module)]
            context = self._contexts.get(index)
            if context is None:
                context = prepare(call.module, call.input.detach())
                if self._cached + context.numel() <= CONTEXT_BUDGET:  # reuse in later passes
                    self._contexts[index] = context
                    self._cached += context.numel()
            for attr, value in kernel(call.module, context, g).items():
                param = getattr(call.module, attr)
                name = self.param_names.get(id(param))
                if name is None:  # frozen parameter
                    continue
                if self._uses[id(param)] > 1 and isinstance(value, tuple):
                    value = value[0].unsqueeze(2) * value[1].unsqueeze(1)  # (N, out, in)
                result[name] = result[name] + value if name in result else value
        if verify is not None:
            _verify_batch_gradient(result, dict(zip(verify, grads[len(outputs):], strict=True)))
        return result

    def free(self) -> None:
        self.calls.clear()
        self._contexts.clear()
        self.logits = torch.empty(0)


def func_per_sample_grads(model: nn.Module, trainable: Mapping[str, Tensor], inputs: Tensor,
                          u: Tensor) -> dict[str, Tensor]:
    """Generic J_nᵀ u_n for every trainable parameter via vmap(grad). inputs (N, ...), u (N, C)."""

    def pseudo_loss(params: dict[str, Tensor], x: Tensor, u_n: Tensor) -> Tensor:
        logits = functional_call(model, params, (x.unsqueeze(0),)).squeeze(0)  # (C,)
        return (logits * u_n).sum()

    detached = {n: p.detach() for n, p in trainable.items()}
    return vmap(grad(pseudo_loss), in_dims=(None, 0, 0))(detached, inputs, u)
