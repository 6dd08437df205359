"""Diagonal Hessian of the per-sample loss (Optimal Brain Damage), exact and estimated.

The paper's "hessian" objective (Table 2, §6.2) weighs (w_i − ŵ_i)² by E[∂²L/∂w_i²]; the
"gradient+hessian" objective adds ¼ E[(∂²L/∂w_i²)²] (w_i − ŵ_i)⁴. L_n is the cross-entropy of
sample n with logits z/T (temperature T, App. C.3.1). `accumulate_hessian` returns, for one batch,

    sums[name]    = Σ_n diag(∂²L_n/∂w²)           (same shape as the parameter)
    squares[name] = Σ_n diag(∂²L_n/∂w²)²          (only with want_squares)

and the caller divides by the number of samples and adds μ (App. C.3.2, `add_hessian_regularizer`:
ReLU sparsity leaves many exact zeros on the diagonal, which μ > 0 keeps from meaning "free").

Methods (cost per batch; P parameters, C classes, K = num_probes, B = one backward pass):
- "exact": the exact per-sample diagonal. For piecewise-linear models it is the Gauss-Newton
  diagonal Σ_c (J_nᵀ s_c)², computed with C − 1 batched backward passes plus per-sample gradients
  from a per-layer kernel table (curvature.py): ≈ (C−1)·B. For any other model (tanh, GELU,
  LayerNorm, attention) the Gauss-Newton misses the residual term Σ_k ∂L/∂z_k ∂²z_k/∂w², so it
  falls back to one Hessian-vector product per parameter entry (vmap over samples and unit
  vectors): ≈ P·B — small models only; a warning says so above 50 000 parameters.
- "curvature-propagation" (Martens et al. 2012, the paper's estimator): (J_nᵀ S_n ε)² with
  Rademacher ε ∈ {±1}^(C−1), unbiased for the Gauss-Newton diagonal: ≈ K·B. It equals the Hessian
  diagonal in expectation only for piecewise-linear models; a ModelError says so for others.
- "hutchinson": v ⊙ H_n v with a Rademacher v per sample and probe, from per-sample Hessian-vector
  products (torch.func vmap of vjp of grad): ≈ 2K·B. Unbiased for every model, but its variance
  Σ_{j≠i} H_ij² includes the large cross-layer terms of the Hessian, so it needs many probes.
Measured (bench/hessian.py --threads 1, ResNet-20, 64 CIFAR-sized images, random weights,
shared CPU): forward+backward 0.14 s; exact 1.35 s (9.5x); exact with squares 1.29 s;
curvature propagation K=1 0.28 s (1.9x), K=2 with squares 0.50 s; hutchinson K=1 0.71 s.
(Session 1's code in the same run conditions: exact 14x, curvature propagation K=1 2.8x; the
gains are the grouped-conv kernel and C − 1 instead of C directions. The triangular factor
also gave curvature propagation a lower error against exact: 0.03 instead of 0.17 at K=1.)
Add a one-time cost per model for the piecewise-linearity check: ResNet-20, 1 thread, 9.7 s
CPU on 16 samples and their noisy copies (3.7 s on the 2 samples it used to check, which a dead
nonlinearity could fool).

Piecewise linear means: every layer is affine in its own parameters and every nonlinearity is
piecewise linear (ReLU, max-pool, eval BatchNorm, padding shortcuts, ...), so the centred logits
are locally linear in each parameter tensor alone and the residual term vanishes. A module table
rejects known nonlinear types at once; otherwise a numerical check of the second directional
derivative on up to 16 samples and noisy copies of them decides (it sees functional calls in
forward() too), cached per model.
A final LogSoftmax is fine: it shifts each sample's logits by a constant, which cross-entropy
ignores. The hook kernels check themselves against autograd's batch gradient on the first pass
and hand over to a torch.func engine when they cannot see every use of a weight.

Reverse over reverse, never forward over reverse. PyTorch's reverse mode treats the row
`padding_idx` of an `nn.Embedding` as a constant where the embedding looks it up (it gets no
gradient there), but forward mode (jvp) differentiates the lookup like any other row. When that
tensor is also used elsewhere (an embedding tied to the decoder, which does give the padding
row a gradient), `jvp(grad(L))` differentiates autograd's gradient along the true forward
dependence: the result is the Jacobian of a field that is not a gradient (not even symmetric),
and its diagonal on the padding row was 13.6% off the double-backward Hessian of a small model
(torch.func.hessian = jacfwd(jacrev) gives the same wrong value). The definition used here and
by every first-order objective is autograd's: the padding row is a constant inside the lookup,
and the Hessian is that of the loss with the looked-up padding vector held fixed. Reverse over
reverse (`vjp` of `grad`) computes exactly that, like the brute-force reference. The
Gauss-Newton path only uses reverse-mode gradients J_nᵀu, so it follows the same definition.

Squares of stochastic estimates. E[h̃²] = h² + Var h̃ ≠ h², so the square of one estimate is
biased. With K ≥ 2 independent probes e_1..e_K of the same sample, the pair average
((Σ_k e_k)² − Σ_k e_k²) / (K(K−1)) = mean_{k≠l} e_k e_l is unbiased for h² (independence makes
E[e_k e_l] = h·h); it uses every pair, so it is the best unbiased use of the K probes. Hence
want_squares with a stochastic method needs num_probes ≥ 2. "exact" squares the exact diagonal.

Everything runs in the model's dtype and device, with the model temporarily in eval mode.
Samples are processed in chunks (``chunk_size``) so memory stays bounded.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vjp, vmap

from rdcompress.errors import ConfigError, ModelError, NonFiniteError
from rdcompress.importance.config import HESSIAN_METHODS
from rdcompress.importance.curvature import (
    HookedGGN,
    HookMismatch,
    check_samples_independent,
    func_per_sample_grads,
    kernel_modules,
    logit_hessian_factor,
    piecewise_linear_reason,
)

_SLOW_EXACT_WARN_PARAMS = 50_000
_CHUNK_BUDGET = 1 << 26  # elements of per-sample statistics held at once (~256 MiB in float32)


def accumulate_hessian(model: nn.Module, inputs: Tensor, targets: Tensor, *, method: str,
                       temperature: float, num_probes: int, generator: torch.Generator | None,
                       want_squares: bool, chunk_size: int | None = None,
                       ) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
    """Per-parameter sums over the batch of diag(∂²L_n/∂w²) and, optionally, of its square.

    Args:
        model: classifier returning logits (N, C); its trainable parameters (requires_grad) are
            the ones scored, named as in ``model.named_parameters()``.
        inputs: (N, ...) batch; floating inputs are cast to the parameters' dtype and device.
        targets: (N,) integer labels in [0, C).
        method: "exact" | "hutchinson" | "curvature-propagation" (see the module docstring).
        temperature: T > 0; L_n = cross_entropy(z_n / T, y_n).
        num_probes: random probes per sample for the stochastic methods (ignored by "exact");
            at least 2 with want_squares.
        generator: source of the probes; the same seed gives the same result (for a fixed
            chunk_size). None uses torch's global generator.
        want_squares: also return Σ_n diag(∂²L_n/∂w²)² (unbiased for the stochastic methods).
        chunk_size: samples per pass; None picks one from the parameter count.

    Returns:
        (sums, squares): dicts name -> tensor shaped like the parameter (its dtype and device);
        squares is None unless want_squares.
    """
    _validate(method, temperature, num_probes, want_squares, chunk_size)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not trainable:
        raise ModelError("the model has no parameter with requires_grad=True; nothing to score")
    reference = next(iter(trainable.values()))
    inputs, targets = _prepare_batch(inputs, targets, reference)
    sums = {n: torch.zeros_like(p, memory_format=torch.contiguous_format)
            for n, p in trainable.items()}
    squares = {n: torch.zeros_like(s) for n, s in sums.items()} if want_squares else None
    if inputs.shape[0] == 0:
        return sums, squares
    moments = _Moments(sums, squares)
    total_params = sum(p.numel() for p in trainable.values())
    per_sample = (4 if want_squares else 2) * total_params  # held per sample, in elements
    chunk = chunk_size or max(1, min(inputs.shape[0], _CHUNK_BUDGET // per_sample))
    with _eval_mode(model), torch.enable_grad():
        check_samples_independent(model)
        with torch.no_grad():
            num_classes = _check_logits(model(inputs[:1]), targets)
        if method == "hutchinson":
            _refuse_vmap_unsafe(model)
            for x, y in _chunks(inputs, targets, chunk):
                _hutchinson_chunk(model, trainable, x, y, temperature, num_probes, generator,
                                  moments)
            return _checked(sums, squares)
        reason = piecewise_linear_reason(model, inputs, trainable)
        if reason is None:
            _gauss_newton(model, trainable, inputs, temperature, method, num_probes, generator,
                          num_classes, chunk, moments)
        elif method == "curvature-propagation":
            raise ModelError(
                f"curvature propagation estimates the Gauss-Newton diagonal, which equals the "
                f"Hessian diagonal only for piecewise-linear models, but {reason}; use "
                "method='hutchinson' (unbiased for any model) or 'exact' (small models)")
        else:  # exact, general model: one HVP per parameter entry
            if total_params > _SLOW_EXACT_WARN_PARAMS:
                warnings.warn(
                    f"exact Hessian diagonal of a model that is not piecewise linear ({reason}) "
                    f"costs {total_params} Hessian-vector products per sample; consider "
                    "method='hutchinson'", stacklevel=2)
            for x, y in _chunks(inputs, targets, chunk_size or min(chunk, 8)):
                _exact_slow_chunk(model, trainable, x, y, temperature, moments)
    return _checked(sums, squares)


def add_hessian_regularizer(hessian: dict[str, Tensor], mu: float) -> dict[str, Tensor]:
    """App. C.3.2: return {name: h + μ}. μ ≥ 0 keeps ReLU-zeroed diagonal entries from scoring
    as free to change; the paper tunes μ by binary search on validation accuracy."""
    if not (isinstance(mu, numbers.Real) and math.isfinite(mu) and mu >= 0):
        raise ConfigError(f"mu={mu!r} must be a finite number >= 0")
    return {name: value + mu for name, value in hessian.items()}


def hessian_diagonal_bruteforce(model: nn.Module, inputs: Tensor, targets: Tensor,
                                temperature: float = 1.0) -> dict[str, Tensor]:
    """Reference: per-sample exact diagonals {name: (N, *shape)} by double backward.

    Loops over samples and over every parameter entry (one backward each): O(N·P) backward
    passes. For tests on tiny models only; no shortcut, no Gauss-Newton assumption.
    """
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    out = {n: p.new_zeros((inputs.shape[0], *p.shape)) for n, p in trainable.items()}
    params = list(trainable.values())
    with _eval_mode(model), torch.enable_grad():
        for n in range(inputs.shape[0]):
            logits = model(inputs[n:n + 1])
            loss = F.cross_entropy(logits / temperature, targets[n:n + 1])
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            for (name, p), g in zip(trainable.items(), grads, strict=True):
                if g is None or not g.requires_grad:
                    continue
                flat, row = g.reshape(-1), out[name][n].view(-1)
                for i in range(flat.numel()):
                    (h,) = torch.autograd.grad(flat[i], p, retain_graph=True, allow_unused=True)
                    if h is not None:
                        row[i] = h.reshape(-1)[i].detach()
    return out


# --------------------------------------------------------------------------------------------
# Estimators, one chunk of samples each
# --------------------------------------------------------------------------------------------

@dataclass
class _PowerSums:
    """Σ_k e_k and Σ_k e_k² of K per-sample estimates e_k, (n, *shape); for a Linear weight
    e_k = a_k ⊗ b is kept factored: s1 = Σ a_k, s2 = Σ a_k² (n, out) and factor = b (n, in)."""

    s1: Tensor
    s2: Tensor | None
    factor: Tensor | None = None

    def add(self, e: Tensor) -> None:
        self.s1 = self.s1 + e
        if self.s2 is not None:
            self.s2 = self.s2 + e * e


def _add_estimate(store: dict[str, _PowerSums], name: str, e: Tensor, need_s2: bool,
                  factor: Tensor | None = None) -> None:
    if name in store:
        store[name].add(e)
    else:
        store[name] = _PowerSums(e, e * e if need_s2 else None, factor)


class _Moments:
    """Turns per-sample power sums into the batch sums of h and h² (see module docstring)."""

    def __init__(self, sums: dict[str, Tensor], squares: dict[str, Tensor] | None):
        self.sums, self.squares = sums, squares

    def add(self, name: str, power: _PowerSums, count: int, exact: bool) -> None:
        """`count` estimates per sample; exact: s1 is the exact diagonal itself (count 1)."""
        mean = power.s1 / (1 if exact else count)                     # (n, *shape) or (n, out)
        if self.squares is not None:
            if exact:
                pair = power.s1 * power.s1
            else:  # mean over pairs k ≠ l of e_k e_l, unbiased for h²
                assert power.s2 is not None  # need_s2 was set for squares of estimates
                pair = (power.s1 * power.s1 - power.s2) / (count * (count - 1))
        if power.factor is None:
            self.sums[name] += mean.sum(0)
            if self.squares is not None:
                self.squares[name] += pair.sum(0)
        else:  # Σ_n a_n ⊗ b_n as a matmul: (out, n) @ (n, in)
            self.sums[name] += mean.T @ power.factor
            if self.squares is not None:
                self.squares[name] += pair.T @ (power.factor * power.factor)


def _gauss_newton(model: nn.Module, trainable: Mapping[str, Tensor], inputs: Tensor,
                  temperature: float, method: str, num_probes: int,
                  generator: torch.Generator | None, num_classes: int, chunk: int,
                  moments: _Moments) -> None:
    """Exact GGN or curvature propagation over all chunks (hook kernels when they cover every
    trainable parameter and pass the batch-gradient check, torch.func otherwise)."""
    modules = kernel_modules(model, trainable)
    probes = None
    if method == "curvature-propagation":  # ε: (K, N, C-1), drawn up front: chunk-independent
        probes = _rademacher((num_probes, inputs.shape[0], max(num_classes - 1, 1)), generator,
                             next(iter(trainable.values())))
    for start in range(0, inputs.shape[0], chunk):
        stop = min(start + chunk, inputs.shape[0])
        chunk_probes = None if probes is None else probes[:, start:stop]
        hooks_ok = _ggn_chunk(model, trainable, modules, inputs[start:stop], temperature,
                              chunk_probes, moments, verify=start == 0)
        modules = modules if hooks_ok else None


def _ggn_chunk(model: nn.Module, trainable: Mapping[str, Tensor],
               modules: list[nn.Module] | None, x: Tensor, temperature: float,
               probes: Tensor | None, moments: _Moments, verify: bool) -> bool:
    """Exact GGN (probes None: u = columns of S) or curvature propagation (u = S ε_k).

    Uses the hook kernels when ``modules`` is not None (checked against autograd's batch
    gradient on the first pass if ``verify``), else torch.func. Returns whether hooks were used;
    a failed check falls back to torch.func for this chunk, and the caller stops using hooks."""
    if modules is not None:
        try:
            _ggn_chunk_stats(model, trainable, modules, x, temperature, probes, moments, verify)
            return True
        except HookMismatch:
            pass
    _ggn_chunk_stats(model, trainable, None, x, temperature, probes, moments, False)
    return False


def _ggn_chunk_stats(model: nn.Module, trainable: Mapping[str, Tensor],
                     modules: list[nn.Module] | None, x: Tensor, temperature: float,
                     probes: Tensor | None, moments: _Moments, verify: bool) -> None:
    engine = None
    if modules is not None:
        names = {id(p): n for n, p in trainable.items()}
        engine = HookedGGN(model, modules, x, names)
        logits = engine.logits.detach()
    else:
        with torch.no_grad():
            logits = model(x)
    root = logit_hessian_factor(logits, temperature)       # S: (n, C, C-1), S Sᵀ = ∂²L/∂z²
    if probes is None:
        vectors = [root[:, :, c] for c in range(root.shape[2])]  # C × (n, C)
    else:
        vectors = [torch.einsum("nce,ne->nc", root, eps) for eps in probes]  # K × (n, C)
    need_s2 = probes is not None and moments.squares is not None
    exact, count = probes is None, len(vectors)
    stats: dict[str, _PowerSums] = {}  # per-sample power sums, kept only for squares
    for k, u in enumerate(vectors):
        grads: Mapping[str, Tensor | tuple]
        if engine is not None:
            grads = engine.per_sample_grads(u, last=k == len(vectors) - 1,
                                            verify=trainable if verify and k == 0 else None)
        else:
            grads = func_per_sample_grads(model, trainable, x, u)
        for name, q in grads.items():
            factor: Tensor | None  # the x² of a factored Linear estimate g² ⊗ x²
            if isinstance(q, tuple):  # (g, x): (J_nᵀu)² = g² ⊗ x²
                estimate, factor = q[0] * q[0], q[1] * q[1]
            else:
                estimate, factor = q * q, None
            if moments.squares is None:  # sums only: reduce over samples now, keep nothing
                moments.add(name, _PowerSums(estimate, None, factor), count, exact)
            else:
                _add_estimate(stats, name, estimate, need_s2, factor)
    if engine is not None:
        engine.free()
    for name, power in stats.items():
        moments.add(name, power, count, exact)


def _single_loss(model: nn.Module, temperature: float):
    def loss(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        logits = functional_call(model, params, (x.unsqueeze(0),))   # (1, C)
        return F.cross_entropy(logits / temperature, y.unsqueeze(0))
    return loss


def _hutchinson_chunk(model: nn.Module, trainable: Mapping[str, Tensor], x: Tensor, y: Tensor,
                      temperature: float, num_probes: int, generator: torch.Generator | None,
                      moments: _Moments) -> None:
    """Per-sample v ⊙ H_n v for K Rademacher probes v (each (n, *shape) per parameter)."""
    params = {n: p.detach() for n, p in trainable.items()}
    loss = _single_loss(model, temperature)

    def hvp(xi: Tensor, yi: Tensor, v: dict[str, Tensor]) -> dict[str, Tensor]:
        # Reverse over reverse, not jvp of grad (padding_idx; module docstring).
        return vjp(lambda p: grad(loss)(p, xi, yi), params)[1](v)[0]

    batched_hvp = vmap(hvp)
    need_s2 = moments.squares is not None
    stats: dict[str, _PowerSums] = {}
    for _ in range(num_probes):
        probes = {n: _rademacher((x.shape[0], *p.shape), generator, p) for n, p in params.items()}
        products = batched_hvp(x, y, probes)
        for name, v in probes.items():
            if need_s2:
                _add_estimate(stats, name, v * products[name], need_s2)
            else:  # sums only: reduce over samples now
                moments.add(name, _PowerSums(v * products[name], None), num_probes, exact=False)
    for name, power in stats.items():
        moments.add(name, power, num_probes, exact=False)


def _exact_slow_chunk(model: nn.Module, trainable: Mapping[str, Tensor], x: Tensor, y: Tensor,
                      temperature: float, moments: _Moments, basis_chunk: int = 64) -> None:
    """Exact per-sample diagonals for any model: e_iᵀ H_n for every unit vector e_i, taking entry
    i; vmap over samples and over chunks of unit vectors, one parameter tensor at a time (one
    forward and gradient per sample and chunk, then a batched pullback per unit vector)."""
    params = {n: p.detach() for n, p in trainable.items()}
    loss = _single_loss(model, temperature)
    for name, p in params.items():
        numel = p.numel()
        diag = x.new_zeros((x.shape[0], numel), dtype=p.dtype)

        def entries(xi: Tensor, yi: Tensor, index: Tensor, name: str = name,
                    p: Tensor = p, numel: int = numel) -> Tensor:
            def grad_of(value: Tensor) -> Tensor:
                return grad(lambda q: loss({**params, name: q}, xi, yi))(value)

            units = F.one_hot(index, numel).to(p.dtype).reshape(-1, *p.shape)  # (B, *shape)
            pullback = vjp(grad_of, p)[1]  # reverse over reverse (module docstring)
            rows = vmap(lambda e: pullback(e)[0])(units)                       # (B, *shape)
            return rows.reshape(-1, numel).gather(1, index[:, None]).squeeze(1)  # (B,)

        def loop(xi: Tensor, yi: Tensor, index: Tensor, name: str = name, p: Tensor = p
                 ) -> Tensor:
            with torch.enable_grad():
                value = p.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(loss({**params, name: value}, xi, yi), value,
                                           create_graph=True)
                flat = g.reshape(-1)
                return torch.stack([
                    torch.autograd.grad(flat[i], value, retain_graph=True, allow_unused=True)[0]
                    .reshape(-1)[i] if flat[i].requires_grad else flat.new_zeros(())
                    for i in index.tolist()]).detach()

        unsafe = _vmap_unsafe(model)
        for start in range(0, numel, basis_chunk):
            index = torch.arange(start, min(start + basis_chunk, numel), device=p.device)
            diag[:, start:start + index.numel()] = (
                torch.stack([loop(x[n], y[n], index) for n in range(x.shape[0])]) if unsafe
                else _over_samples(entries, x, y, index, name, loop))
        moments.add(name, _PowerSums(diag.reshape(x.shape[0], *p.shape), None), 1, exact=True)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


# Modules whose kernels' vmap batching rules are wrong under the nested vmap of the exact path:
# nn.PReLU's backward gave a shape error on some parameters and wrong values (9-13% off) on
# others of the same model; recurrent kernels have no batching rule. Such models take the loop.
_VMAP_UNSAFE: tuple[type[nn.Module], ...] = (nn.PReLU, nn.RNNBase)


def _vmap_unsafe(model: nn.Module) -> bool:
    return any(isinstance(module, _VMAP_UNSAFE) for module in model.modules())


def _refuse_vmap_unsafe(model: nn.Module) -> None:
    for name, module in model.named_modules():
        if isinstance(module, _VMAP_UNSAFE):
            raise ConfigError(
                f"hessian_method='hutchinson' computes per-sample Hessian-vector products under "
                f"torch.func.vmap, which module {name or '<root>'!r} ({type(module).__name__}) "
                "does not support correctly; use hessian_method='exact', which computes this "
                "model's diagonal one sample at a time")


def _over_samples(entries: Callable[[Tensor, Tensor, Tensor], Tensor], x: Tensor, y: Tensor,
                  index: Tensor, name: str, loop: Callable[[Tensor, Tensor, Tensor], Tensor]
                  ) -> Tensor:
    """``entries`` for every sample: vmap over samples and unit vectors, or ``loop`` (plain
    autograd, one sample and one entry at a time) where a kernel's batching rule breaks under
    vmap: ``nn.PReLU``'s backward mixes the batch into its weight-gradient reduction, a shape
    error, and gave wrong values on other parameters of the same model."""
    try:
        return vmap(entries, in_dims=(0, 0, None))(x, y, index)
    except RuntimeError as batched_error:
        try:
            return torch.stack([loop(x[n], y[n], index) for n in range(x.shape[0])])
        except (RuntimeError, NotImplementedError) as error:
            raise ConfigError(
                f"the exact Hessian diagonal of parameter {name!r} cannot be computed per "
                f"sample ({error}; under vmap: {batched_error}); use "
                "hessian_method='hutchinson', which needs only Hessian-vector products"
            ) from error


def _validate(method: str, temperature: float, num_probes: int, want_squares: bool,
              chunk_size: int | None) -> None:
    if method not in HESSIAN_METHODS:
        raise ConfigError(f"method={method!r} is unknown; expected one of "
                          f"{', '.join(HESSIAN_METHODS)}")
    if not (isinstance(temperature, numbers.Real) and math.isfinite(temperature)
            and temperature > 0):
        raise ConfigError(f"temperature={temperature!r} must be a finite number > 0")
    if not isinstance(num_probes, int) or num_probes < 1:
        raise ConfigError(f"num_probes={num_probes!r} must be an integer >= 1")
    if want_squares and method != "exact" and num_probes < 2:
        raise ConfigError(
            f"num_probes={num_probes} with method={method!r} and squares (gradient+hessian): "
            "an unbiased square needs two independent probes per sample; use num_probes >= 2 "
            "or method='exact'")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ConfigError(f"chunk_size={chunk_size!r} must be None or an integer >= 1")


def _prepare_batch(inputs: Tensor, targets: Tensor, reference: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(inputs, Tensor) or inputs.dim() < 1:
        raise ConfigError(f"inputs must be a tensor (N, ...); got {type(inputs).__name__}")
    if not isinstance(targets, Tensor) or targets.dim() != 1 or targets.is_floating_point() \
            or targets.shape[0] != inputs.shape[0]:
        shape = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ConfigError(f"targets must be integer labels of shape ({inputs.shape[0]},); "
                          f"got {shape}")
    if inputs.is_floating_point():
        inputs = inputs.to(device=reference.device, dtype=reference.dtype)
    return inputs.to(reference.device), targets.to(device=reference.device, dtype=torch.long)


def _check_logits(logits: Tensor, targets: Tensor) -> int:
    """Validate the model output (1, C) and the labels; return C."""
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ModelError(f"the model must return logits of shape (N, C); got {shape}")
    if not torch.isfinite(logits).all():
        raise NonFiniteError("the model's logits contain NaN or inf; check weights and inputs")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= logits.shape[1]):
        raise ConfigError(f"targets must lie in [0, {logits.shape[1]}); got "
                          f"[{int(targets.min())}, {int(targets.max())}]")
    return int(logits.shape[1])


def _checked(sums: dict[str, Tensor], squares: dict[str, Tensor] | None
             ) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
    for kind, stats in (("Hessian diagonal", sums), ("squared Hessian diagonal", squares or {})):
        for name, value in stats.items():
            if not torch.isfinite(value).all():
                raise NonFiniteError(f"the {kind} of parameter {name!r} has NaN or inf; check "
                                     "the weights, inputs and temperature")
    return sums, squares


def _chunks(inputs: Tensor, targets: Tensor, size: int) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, inputs.shape[0], size):
        yield inputs[start:start + size], targets[start:start + size]


def _rademacher(shape: tuple[int, ...], generator: torch.Generator | None,
                like: Tensor) -> Tensor:
    """±1 with probability ½ each, drawn on the generator's device, cast to like's."""
    device = generator.device if generator is not None else torch.device("cpu")
    bits = torch.randint(0, 2, shape, generator=generator, device=device)
    return bits.to(device=like.device, dtype=like.dtype) * 2 - 1


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode inside, each module's own training flag restored after."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag
