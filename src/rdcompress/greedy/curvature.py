"""The fast greedy score: Δ_u ≈ ½ Σ_{i∈u} H_ii Var(t_i), H = diagonal Hessian of L in the layer.

Why second order: E t = w makes the first-order term g·E[t − w] vanish, so
E_t L(w ← t) − L = ½ E[(t − w)ᵀ H (t − w)] + O(|t − w|³) = ½ H_ii Var t_i for one weight. For a
structured unit the off-diagonal H_ij inside the unit are ignored (as are the cross terms
between the units of one block, see ``loop.py``).

H_ii is the Gauss–Newton diagonal Σ_n Σ_k (J_nᵀ S_nk)_i² with S_n S_nᵀ = ∂²L/∂f_n²
(``loss.output_hessian_factor``). For networks that are piecewise linear in one layer's weights
(ReLU MLPs and CNNs, max-pooling, eval BatchNorm) it equals the exact Hessian diagonal; for
others (tanh, GELU) it is the usual positive semi-definite approximation. Per-layer kernels:

- ``nn.Linear`` with (N, in) inputs: H = Vᵀ X², V = Σ_k (∂⟨S_k, f⟩/∂z)² — K backward passes to
  the layer's output z plus one (out, N)·(N, in) matmul;
- ``nn.Conv1d`` / ``nn.Conv2d``: K backward passes to the layer's output, then per-sample
  weight gradients from one grouped weight-gradient conv per chunk of samples (the kernel of
  ``importance.per_sample``), squared and summed;
- anything else (Linear on (N, T, in) inputs, a shared weight, ...): per-sample gradients with
  ``torch.func`` (vmap of grad over samples), K passes, samples in chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from rdcompress.errors import NonFiniteError
from rdcompress.greedy.exact import model_state
from rdcompress.greedy.loss import output_hessian_factor
from rdcompress.greedy.replacements import Outcomes
from rdcompress.importance.per_sample import conv_padded_calls, conv_weight_per_sample

_CHUNK_ELEMENTS = 1 << 24  # per-sample gradient elements held at once by the fallback


def owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """(module, attribute) of parameter ``name`` (e.g. "layers.1.weight" -> (Linear, "weight"))."""
    path, _, attribute = name.rpartition(".")
    return (model.get_submodule(path) if path else model), attribute


def _capture(model: nn.Module, module: nn.Module, inputs: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(outputs (N, C), the layer's input x, its output z as a leaf that gradients stop at),
    from one forward with a hook; None when the module runs twice (a shared weight)."""
    seen: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        if "x" in seen:  # called twice in one forward: the weight is shared, use the fallback
            seen["shared"] = output
        seen["x"] = args[0].detach()
        leaf = output.detach().requires_grad_(True)  # gradients stop here
        seen["z"] = leaf
        return leaf

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            outputs = model(inputs)  # (N, C)
    finally:
        handle.remove()
    x, z = seen.get("x"), seen.get("z")
    if "shared" in seen or x is None or z is None:
        return None
    return outputs, x, z


def _output_gradients(outputs: torch.Tensor, z: torch.Tensor, loss: str
                      ) -> Iterator[torch.Tensor]:
    """∂⟨S_k, f⟩/∂z for k = 1..K, each shaped like z (one backward pass to z each)."""
    factor = output_hessian_factor(outputs.detach(), loss)  # (N, C, K)
    for k in range(factor.shape[2]):
        (back,) = torch.autograd.grad((outputs * factor[:, :, k]).sum(), z, retain_graph=True)
        yield back


def _linear_kernel(model: nn.Module, module: nn.Module, name: str, inputs: torch.Tensor,
                   loss: str) -> torch.Tensor | None:
    """H (out, in) of a Linear weight from hooks; None when its input is not (N, in)."""
    captured = _capture(model, module, inputs)
    if captured is None or captured[1].ndim != 2 or captured[2].ndim != 2:
        return None
    outputs, x, z = captured
    squared = torch.zeros_like(z)  # (N, out): Σ_k (∂⟨S_k, f⟩/∂z)²
    for back in _output_gradients(outputs, z, loss):
        squared += back * back
    return squared.transpose(0, 1) @ (x * x)  # (out, in)


def _conv_kernel(model: nn.Module, module: nn.Module, name: str, inputs: torch.Tensor,
                 loss: str) -> torch.Tensor | None:
    """H of a Conv1d/Conv2d weight: per-sample weight gradients of each ⟨S_k, f⟩ from one
    grouped weight-gradient conv per chunk of samples (``importance.per_sample``), squared."""
    assert isinstance(module, nn.Conv1d | nn.Conv2d)
    captured = _capture(model, module, inputs)
    if captured is None:
        return None
    outputs, x, z = captured
    calls, padding = conv_padded_calls(module, [(x, z)], None)
    padded = calls[0][0]  # x padded as the conv pads it
    diagonal = torch.zeros_like(module.weight, dtype=z.dtype)
    size = max(1, _CHUNK_ELEMENTS // max(1, module.weight.numel()))  # samples per chunk
    for back in _output_gradients(outputs, z, loss):  # (N, C_out, *S_out)
        for start in range(0, x.shape[0], size):
            g = conv_weight_per_sample(module, padded[start:start + size], padding,
                                       back[start:start + size])  # (n, *weight.shape)
            diagonal += (g * g).sum(0)
    return diagonal


def _func_kernel(model: nn.Module, name: str, inputs: torch.Tensor, loss: str) -> torch.Tensor:
    """H of any parameter from per-sample gradients of ⟨S_nk, f_n⟩ (torch.func)."""
    state = model_state(model)
    weight = state[name]
    with torch.no_grad():
        outputs = functional_call(model, state, (inputs,))
    factor = output_hessian_factor(outputs, loss)  # (N, C, K)

    def projected(w: torch.Tensor, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, {**state, name: w}, (x.unsqueeze(0),))  # (1, C)
        return (out[0] * s).sum()

    per_sample = vmap(grad(projected), in_dims=(None, 0, 0))
    diagonal = torch.zeros_like(weight)
    size = max(1, _CHUNK_ELEMENTS // max(1, weight.numel()))
    for start in range(0, inputs.shape[0], size):
        x = inputs[start:start + size]
        for k in range(factor.shape[2]):
            g = per_sample(weight, x, factor[start:start + size, :, k])  # (n, *shape)
            diagonal += (g * g).sum(0)
    return diagonal


Kernel = Callable[[nn.Module, nn.Module, str, torch.Tensor, str], "torch.Tensor | None"]
KERNELS: dict[type, Kernel] = {nn.Linear: _linear_kernel, nn.Conv1d: _conv_kernel,
                               nn.Conv2d: _conv_kernel}  # others: the torch.func fallback


def hessian_diagonal(model: nn.Module, name: str, inputs: torch.Tensor, loss: str
                     ) -> torch.Tensor:
    """Weight-shaped float64 Gauss–Newton diagonal of the mean calibration loss in ``name``."""
    module, attribute = owner(model, name)
    kernel = KERNELS.get(type(module)) if attribute == "weight" else None
    diagonal = kernel(model, module, name, inputs, loss) if kernel else None
    if diagonal is None:
        diagonal = _func_kernel(model, name, inputs, loss)
    if not torch.isfinite(diagonal).all():
        raise NonFiniteError(f"the Hessian diagonal of {name!r} holds NaN/inf; check the model's "
                             "outputs on the calibration data.")
    return diagonal.detach().to(torch.float64)


def second_order_scores(hessian: torch.Tensor, outcomes: Outcomes, units: torch.Tensor
                        ) -> torch.Tensor:
    """(len(units),) float64 |½ Σ_{i∈u} H_ii Var t_i| for the listed units."""
    per_weight = 0.5 * hessian.reshape(-1) * outcomes.variance().reshape(-1)  # (numel,)
    per_unit = torch.zeros(outcomes.q.numel(), dtype=torch.float64)
    per_unit.scatter_add_(0, outcomes.unit_index, per_weight)
    return per_unit[units].abs()
