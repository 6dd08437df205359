"""Level-0 recovery: no gradients, seconds. Re-estimated BatchNorm statistics and bias correction.

After compression a layer's output shifts on average: E_x[(W − Ŵ) x] ≠ 0 (Nagel et al. 2019,
"Data-free quantization", §4.2 empirical bias correction; Banner et al. 2019). Both fixes here
change only tensors a ``.rdz`` stores raw (biases, BatchNorm statistics), so the file stays
honest and its size barely moves.

- ``reestimate_batchnorm``: every BatchNorm's running statistics recomputed on calibration data
  as exact population moments (float64 sums over all samples; unbiased variance, as PyTorch).
- ``correct_bias``: each compressed Linear/Conv2d's expected output shift folded into its bias:
  δ = E[W x + b] − E[Ŵ x̂ + b̂], x the layer's input in the original and x̂ in the compressed
  model (``mode="network"``, Nagel et al.'s empirical correction: upstream errors included), or
  δ = E[(W − Ŵ) x̂] (``mode="layer"``: the layer's own error only). A layer without a bias
  whose output feeds a BatchNorm directly folds it into that BatchNorm's running mean
  (μ ← μ − δ); any other layer without a bias is left as it is and reported (adding a bias
  would change the architecture and the file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from rdcompress.batches import BatchFn, unpack_batch
from rdcompress.errors import ConfigError, ModelError

# ----------------------------------------------------------------------- pure tensor functions


def linear_mean_output(weight: torch.Tensor, mean_input: torch.Tensor) -> torch.Tensor:
    """E_x[W x] of a Linear without its bias: (out, in) @ (in,) -> (out,). Exact by linearity."""
    return weight @ mean_input


def conv2d_mean_output(module: nn.Conv2d, weight: torch.Tensor,
                       mean_input: torch.Tensor) -> torch.Tensor:
    """E over samples and output positions of conv(x, W) without bias: (out,).

    The convolution (padding included, any padding mode) is linear in x, so the mean over
    samples of conv(x_n) is conv(E_n x_n): one convolution of the mean input (C, H, W), then the
    mean over its output positions.
    """
    out = module._conv_forward(mean_input.unsqueeze(0), weight, None)  # (1, out, H', W')
    return out.mean(dim=(0, 2, 3))


# Per layer type: the mean output without bias from (module, weight, E_n[x]) (float64).
MEAN_OUTPUTS: dict[type, Callable[[Any, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    nn.Linear: lambda module, weight, mean: linear_mean_output(weight, mean),
    nn.Conv2d: conv2d_mean_output,
}


def _mean_input_shape(module: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(Σ over samples of the input, sample count): Linear sums every leading dimension
    ((..., in) -> (in,)), Conv2d the batch ((N, C, H, W) -> (C, H, W))."""
    x = x.detach().to(torch.float64)
    if isinstance(module, nn.Linear):
        flat = x.reshape(-1, x.shape[-1])
        return flat.sum(0), flat.shape[0]
    return x.sum(0), x.shape[0]


# ------------------------------------------------------------------------------- helpers


def _batches(loader: Iterable, max_batches: int | None) -> Iterable:
    if max_batches is not None and max_batches < 1:
        raise ConfigError(f"max_batches={max_batches} must be >= 1 (or None for all)")
    return loader if max_batches is None else islice(loader, max_batches)


@torch.no_grad()
def _run(model: nn.Module, loader: Iterable, batch_fn: BatchFn | None, device: Any,
         max_batches: int | None) -> int:
    """Forward every calibration batch through ``model``; the number of batches."""
    count = 0
    for batch in _batches(loader, max_batches):
        inputs, _ = unpack_batch(batch, batch_fn)
        inputs.to(device)(model)
        count += 1
    if count == 0:
        raise ConfigError("the calibration data is empty; level-0 recovery needs batches")
    return count


# --------------------------------------------------------------------------- BatchNorm


def batchnorm_modules(model: nn.Module) -> dict[str, _BatchNorm]:
    """BatchNorm layers that keep running statistics, by module name."""
    return {name: m for name, m in model.named_modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats
            and m.running_mean is not None and m.running_var is not None}


def reestimate_batchnorm(model: nn.Module, loader: Iterable, *, batch_fn: BatchFn | None = None,
                         device: str | torch.device = "cpu",
                         max_batches: int | None = None) -> list[str]:
    """Recompute every BatchNorm's running mean and variance on ``loader``; in place.

    The statistics are the exact population moments of each BatchNorm's input over all
    calibration samples (and positions): mean = Σx / n, var = (Σx² − n·mean²) / (n − 1)
    accumulated in float64 — what ``momentum=None`` (a cumulative average) gives for the mean,
    and the exact variance where a cumulative average of per-batch variances is not. During the
    pass the BatchNorms normalize with batch statistics (train mode, as
    ``torch.optim.swa_utils.update_bn``) and every other module is in eval mode (no dropout).
    ``num_batches_tracked`` and the module modes are restored. Returns the names updated.
    """
    norms = batchnorm_modules(model)
    if not norms:
        return []
    sums: dict[str, list] = {name: [0.0, 0.0, 0] for name in norms}

    def hook_for(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0].detach().to(torch.float64)
            dims = [d for d in range(x.dim()) if d != 1]  # channels on dim 1: (N, C, ...)
            acc = sums[name]
            acc[0] = acc[0] + x.sum(dims)
            acc[1] = acc[1] + (x * x).sum(dims)
            acc[2] += x.numel() // x.shape[1]
        return hook

    modes = {name: m.training for name, m in model.named_modules()}
    tracked: dict[str, torch.Tensor] = {name: m.num_batches_tracked.clone()
                                        for name, m in norms.items()
                                        if m.num_batches_tracked is not None}
    handles = [m.register_forward_pre_hook(hook_for(name)) for name, m in norms.items()]
    try:
        model.eval()
        for m in norms.values():
            m.train()
        _run(model, loader, batch_fn, device, max_batches)
    finally:
        for handle in handles:
            handle.remove()
        for name, m in model.named_modules():
            m.training = modes[name]
    for name, m in norms.items():
        total, squares, n = sums[name]
        if n < 2:
            raise ConfigError(f"BatchNorm {name!r} saw {n} value(s) per channel; re-estimation "
                              "needs at least 2 (more calibration data)")
        mean = total / n
        var = (squares - n * mean * mean).clamp_min(0) / (n - 1)
        assert m.running_mean is not None and m.running_var is not None  # batchnorm_modules
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))
        if name in tracked and m.num_batches_tracked is not None:
            m.num_batches_tracked.copy_(tracked[name])
    return list(norms)


# ------------------------------------------------------------------------- bias correction


@dataclass
class BiasCorrection:
    """What ``correct_bias`` did to one layer."""

    layer: str  # module name
    target: str  # "bias", "batchnorm:<name>" (its running mean) or "skipped"
    shift_norm: float  # ||δ||₂ of the expected output shift (0 when skipped before measuring)
    reason: str = ""  # why skipped

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def _followers(model: nn.Module, names: list[str], loader: Iterable, batch_fn: BatchFn | None,
               device: Any) -> dict[str, str]:
    """{layer: BatchNorm name} for layers whose output tensor is a BatchNorm's input (one
    probe batch, eval mode; found by tensor identity, so any forward code is followed)."""
    modules = dict(model.named_modules())
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # the tensors kept alive: ids stay unique
    followers: dict[str, str] = {}

    def record(name: str) -> Callable:
        return lambda module, args, out: produced.__setitem__(id(out), (name, out))

    def consume(bn_name: str) -> Callable:
        def hook(module: nn.Module, args: tuple) -> None:
            found = produced.get(id(args[0]))
            if found is not None and found[1] is args[0]:
                followers.setdefault(found[0], bn_name)
        return hook

    handles = [modules[n].register_forward_hook(record(n)) for n in names]
    for bn_name in batchnorm_modules(model):
        handles.append(modules[bn_name].register_forward_pre_hook(consume(bn_name)))
    was_training = model.training
    model.eval()
    try:
        _run(model, loader, batch_fn, device, 1)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return followers


def compressed_layers(original: nn.Module, compressed: nn.Module) -> list[str]:
    """Names of modules with a ``weight`` that differs from the original's (forward order of
    ``named_modules``)."""
    originals = dict(original.named_modules())
    names = []
    for name, module in compressed.named_modules():
        weight = getattr(module, "weight", None)
        other = getattr(originals.get(name), "weight", None)
        if not isinstance(weight, torch.Tensor) or not isinstance(other, torch.Tensor):
            continue
        if weight.shape != other.shape:
            raise ModelError(f"layer {name!r}: the original's weight is {tuple(other.shape)}, "
                             f"the compressed model's {tuple(weight.shape)}; pass the original "
                             "this model was compressed from")
        if not torch.equal(weight.detach().cpu(), other.detach().cpu()):
            names.append(name)
    return names


def correct_bias(original: nn.Module, compressed: nn.Module, loader: Iterable, *,
                 batch_fn: BatchFn | None = None, device: str | torch.device = "cpu",
                 max_batches: int | None = None, frozen: Iterable[str] = (),
                 mode: str = "network", sequential: bool = True) -> list[BiasCorrection]:
    """Fold each compressed layer's expected output shift into its bias; in place on
    ``compressed``.

    For every Linear/Conv2d whose weight Ŵ differs from the original's W, over ``loader``
    (averaged over samples, and output positions for convolutions):

    - ``mode="network"`` (default): δ = E[W x + b] − E[Ŵ x̂ + b̂], x the layer's input in
      ``original``, x̂ in ``compressed``: afterwards the layer's mean output equals the
      original's (upstream errors included; Nagel et al. 2019's empirical bias correction);
    - ``mode="layer"``: δ = E[(W − Ŵ) x̂] + (b − b̂): the layer's own mean error on its
      compressed inputs is zero.

    Then b̂ ← b̂ + δ. Without a bias, δ goes into the running mean of a BatchNorm fed directly
    by the layer (μ ← μ − δ); otherwise the layer is skipped and reported. ``frozen``: parameter
    names that must not change (a bias the file stores quantized); their layers are skipped.
    Other layer types with a changed weight are reported as skipped (no formula in
    ``MEAN_OUTPUTS``).

    ``sequential`` (default): layers are corrected one at a time in module order, each measured
    on inputs that already carry the corrections upstream (one pass over ``loader`` per layer);
    False measures every layer in one pass on the uncorrected model.
    """
    if mode not in ("network", "layer"):
        raise ConfigError(f"mode={mode!r}; use 'network' or 'layer'")
    frozen = set(frozen)
    names = compressed_layers(original, compressed)
    modules, originals = dict(compressed.named_modules()), dict(original.named_modules())
    followers = _followers(compressed, names, loader, batch_fn, device) if names else {}
    report: dict[str, BiasCorrection] = {}
    todo = []
    for name in names:
        module = modules[name]
        kind = next((t for t in MEAN_OUTPUTS if type(module) is t), None)
        bias = getattr(module, "bias", None)
        if kind is None:
            report[name] = BiasCorrection(name, "skipped", 0.0,
                                          f"no shift formula for {type(module).__name__}")
        elif isinstance(bias, torch.Tensor) and f"{name}.bias" in frozen:
            report[name] = BiasCorrection(name, "skipped", 0.0, "its bias is stored compressed")
        elif bias is None and name not in followers:
            report[name] = BiasCorrection(name, "skipped", 0.0,
                                          "no bias and no BatchNorm directly after it")
        else:
            todo.append(name)
    reference_means = {}
    if mode == "network" and todo:  # the original never changes: one pass for every layer
        means = _mean_inputs(original, [originals[n] for n in todo], loader, batch_fn, device,
                             max_batches)
        reference_means = dict(zip(todo, means, strict=True))
    groups = [[name] for name in todo] if sequential else [todo]
    for group in groups:
        if not group:
            continue
        means = _mean_inputs(compressed, [modules[n] for n in group], loader, batch_fn, device,
                             max_batches)
        for name, mean_input in zip(group, means, strict=True):
            module, source = modules[name], originals[name]
            mean_output = MEAN_OUTPUTS[type(module)]
            weight = source.weight.detach().to(mean_input.device, torch.float64)
            weight_hat = module.weight.detach().to(mean_input.device, torch.float64)
            reference_input = reference_means.get(name, mean_input)
            shift = mean_output(module, weight, reference_input) \
                - mean_output(module, weight_hat, mean_input)
            report[name] = _apply_shift(name, module, source, shift, followers, modules)
    return [report[name] for name in names]


def _mean_inputs(model: nn.Module, layers: list[nn.Module], loader: Iterable,
                 batch_fn: BatchFn | None, device: Any,
                 max_batches: int | None) -> list[torch.Tensor]:
    """E over calibration samples of each layer's input (eval mode), float64."""
    totals: list[list] = [[0.0, 0] for _ in layers]
    handles = []
    for index, layer in enumerate(layers):
        def hook(module: nn.Module, args: tuple, index: int = index) -> None:
            total, count = _mean_input_shape(module, args[0])
            totals[index][0] = totals[index][0] + total
            totals[index][1] += count
        handles.append(layer.register_forward_pre_hook(hook))
    was_training = model.training
    model.eval()
    try:
        _run(model, loader, batch_fn, device, max_batches)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [total / count for total, count in totals]


@torch.no_grad()
def _apply_shift(name: str, module: nn.Module, source: nn.Module, shift: torch.Tensor,
                 followers: dict[str, str], modules: dict[str, nn.Module]) -> BiasCorrection:
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor):
        original_bias = getattr(source, "bias", None)
        if isinstance(original_bias, torch.Tensor):  # + (b − b̂): a bias changed too
            shift = shift + (original_bias.detach().to(shift.device, torch.float64)
                             - bias.detach().to(shift.device, torch.float64))
        bias.copy_((bias.detach().to(torch.float64) + shift.to(bias.device)).to(bias.dtype))
        return BiasCorrection(name, "bias", float(shift.norm()))
    norm = modules[followers[name]]
    assert isinstance(norm, _BatchNorm) and norm.running_mean is not None
    mean = norm.running_mean
    mean.copy_((mean.to(torch.float64) - shift.to(mean.device)).to(mean.dtype))
    return BiasCorrection(name, f"batchnorm:{followers[name]}", float(shift.norm()))
