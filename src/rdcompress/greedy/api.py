"""``greedy_compress(model, loader, config)``: randomized greedy compression into a .rdz model.

>>> compressed = greedy_compress(model, calibration_loader, GreedyConfig(mode="prune", p=0.3))
>>> compressed.save("model.rdz"); net = rdcompress.compress.load("model.rdz")

Layers are compressed one after another, in the order given; each layer's loop sees the earlier
layers already replaced. How the result is stored (every stored number is what the loop used):

- prune: a PrunedTensor; kept = untouched weights (exact) + replaced survivors (w/p, rounded
  to the dtype once); the replaced weights that drew 0 are the pruned positions.
- quantize, every weight replaced: a QuantizedTensor over the 2k + 1 grid levels.
- quantize, α < 1: a "sum" composite (``compress.compose``) of a QuantizedTensor part "q"
  (mask = replaced positions) and a PrunedTensor part "r" holding the untouched weights exactly.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rdcompress.batches import BatchFn
from rdcompress.codec import PrunedTensor, QuantizedTensor
from rdcompress.codec.entropy import entropy_per_symbol
from rdcompress.codec.tensors import decode_tensor, to_torch
from rdcompress.compress._layers import (
    DTYPE_NAMES,
    LayerInput,
    LayerResult,
    LayerStats,
    layer_distortion,
)
from rdcompress.compress.api import CompressedModel, compress
from rdcompress.compress.compose import SUM, compose_weight, make_recipe, part_name
from rdcompress.compress.context import Context
from rdcompress.compress.prune import STRUCTURED
from rdcompress.compress.registry import Flag, MethodSpec, SweepAxis, register
from rdcompress.errors import ConfigError, NonFiniteError
from rdcompress.greedy.config import PRUNE, QUANTIZE, GreedyConfig
from rdcompress.greedy.curvature import hessian_diagonal, owner, second_order_scores
from rdcompress.greedy.exact import exact_scores
from rdcompress.greedy.loop import LayerOutcome, Scorer, greedy_layer, step_count
from rdcompress.greedy.loss import check_targets, collect_calibration, resolve_loss
from rdcompress.greedy.replacements import (
    Outcomes,
    prune_outcomes,
    rounding_grid,
    rounding_indices,
    rounding_outcomes,
    unit_index,
)

# Structured units per layer type: dim -> what a unit is. Unknown types: a ConfigError.
STRUCTURED_UNITS: dict[type, dict[int, str]] = {
    nn.Linear: {0: "output neurons (rows)", 1: "input neurons (columns)"},
    nn.Conv2d: {0: "output channels (filters)", 1: "input channels"},
}


@dataclass
class GreedyLayerStats(LayerStats):
    """LayerStats plus what the greedy loop did (recorded in the .rdz manifest)."""

    replaced: int = 0  # weights whose unit was replaced by a draw of t
    refreshes: int = 0  # score evaluations of the loop
    block: int = 1  # units replaced per refresh


def greedy_compress(model: nn.Module, loader: Iterable, config: GreedyConfig, *,
                    layers: list[str] | None = None, model_spec: dict | None = None,
                    coder: str = "ans", batch_fn: BatchFn | None = None) -> CompressedModel:
    """Compress ``model``'s layers by randomized greedy pruning or quantization: the same as
    ``compress(model, config, calibration=loader, ...)``.

    Args:
        loader: calibration batches (inputs, targets) defining L (all of them are used).
        layers: parameter names, compressed in this order; default every parameter with
            ndim >= 2, in the model's order.
        model_spec: stored in the manifest so ``compress.load(path)`` rebuilds the architecture.
        coder: entropy coder of the file.
        batch_fn: how to read a batch that is not (inputs, targets) (``rdcompress.batches``);
            greedy compression needs one input tensor and targets per batch.

    The original ``model`` is never modified (a deep copy is worked on).
    """
    if not isinstance(config, GreedyConfig):
        raise ConfigError(f"config must be a GreedyConfig, got {type(config).__name__}.")
    return compress(model, config, calibration=loader, layers=layers, model_spec=model_spec,
                    coder=coder, batch_fn=batch_fn)


def handle_greedy(ctx: Context, config: GreedyConfig) -> CompressedModel:
    """The registered handler: each layer in turn, on a copy of the model whose earlier layers
    are already replaced, scored on the calibration loss."""
    names = [layer.name for layer in ctx.layers]
    work = copy.deepcopy(ctx.model).eval()
    for parameter in work.parameters():
        parameter.requires_grad_(False)
    params = dict(work.named_parameters())
    inputs, targets = collect_calibration(ctx.calibration, params[names[0]].dtype, ctx.batch_fn)
    loss = resolve_loss(config.loss, targets)
    with torch.no_grad():
        outputs = work(inputs)
    check_targets(outputs, targets, loss)
    if not torch.isfinite(outputs).all():
        raise NonFiniteError("the model's outputs on the calibration data hold NaN/inf.")
    generator = torch.Generator().manual_seed(int(config.seed))
    results = {}
    for name in names:
        original = params[name].detach().clone()
        outcomes = _outcomes(work, name, original, config)
        scorer = _scorer(work, name, outcomes, inputs, targets, loss, config)
        block = config.block_for(step_count(config.alpha, outcomes.q.numel()))
        done = greedy_layer(params[name], outcomes, config.alpha, block, scorer, generator)
        results[name] = _layer_result(name, original, done, outcomes, config, block)
    return ctx.assemble(results, config, objective=f"loss:{loss}")


def _outcomes(model: nn.Module, name: str, weight: torch.Tensor, config: GreedyConfig
              ) -> Outcomes:
    if config.mode == QUANTIZE:
        bound = float(weight.abs().max()) if weight.numel() else 0.0
        return rounding_outcomes(weight, rounding_grid(bound, config.k, weight.dtype))
    dim = None
    if config.structured:
        module, _ = owner(model, name)
        dims = STRUCTURED_UNITS.get(type(module))
        if dims is None or config.dim not in dims or weight.ndim <= config.dim:
            raise ConfigError(
                f"structured greedy pruning of {name!r} ({type(module).__name__}, shape "
                f"{tuple(weight.shape)}) along dim={config.dim} is not supported; supported: "
                f"{ {t.__name__: list(d.values()) for t, d in STRUCTURED_UNITS.items()} }."
            )
        dim = config.dim
    return prune_outcomes(weight, config.p, unit_index(tuple(weight.shape), dim))


def _scorer(model: nn.Module, name: str, outcomes: Outcomes, inputs: torch.Tensor,
            targets: torch.Tensor, loss: str, config: GreedyConfig) -> Scorer:
    if config.score == "exact":
        return lambda units: exact_scores(model, name, outcomes, units, inputs, targets, loss)

    def second_order(units: torch.Tensor) -> torch.Tensor:
        return second_order_scores(hessian_diagonal(model, name, inputs, loss), outcomes, units)

    return second_order


def _layer_result(name: str, original: torch.Tensor, done: LayerOutcome, outcomes: Outcomes,
                  config: GreedyConfig, block: int) -> LayerResult:
    shape, dtype_name = tuple(original.shape), DTYPE_NAMES[original.dtype]
    new_flat = done.weight.reshape(-1)
    if config.mode == PRUNE:
        kept = ~done.replaced | done.drew_high  # (numel,)
        kept_values: Any = new_flat[kept].clone()  # the codec takes torch tensors
        pruned = PrunedTensor(name, shape, dtype_name, kept.numpy().copy(), kept_values)
        weight = _decoded(pruned, original.dtype)
        return LayerResult(pruned, weight, _stats(name, original, weight, done, block,
                                                 int(kept.sum()), None, None))
    levels = rounding_grid(float(original.abs().max()) if original.numel() else 0.0,
                           config.k, original.dtype)  # (2k + 1,)
    replaced = done.replaced
    indices = rounding_indices(new_flat[replaced], levels).numpy()
    codebook = levels.to(torch.float64).numpy()
    entropy = entropy_per_symbol(indices, levels.numel()) if indices.size else None
    if bool(replaced.all()):
        entry = QuantizedTensor(name, shape, dtype_name, codebook, indices)
        weight = _decoded(entry, original.dtype)
        return LayerResult(entry, weight, _stats(name, original, weight, done, block,
                                                 original.numel(), levels.numel(), entropy))
    untouched: Any = original.reshape(-1)[~replaced].clone()  # the codec takes torch tensors
    parts: list[PrunedTensor | QuantizedTensor] = [
        QuantizedTensor(part_name(name, "q"), shape, dtype_name, codebook, indices,
                        mask=replaced.numpy().copy()),
        PrunedTensor(part_name(name, "r"), shape, dtype_name, (~replaced).numpy().copy(),
                     untouched),
    ]
    recipe = make_recipe(SUM, name, ["q", "r"], shape, original.dtype)
    weight = compose_weight(name, recipe, {p.name: _decoded(p, original.dtype) for p in parts})
    return LayerResult(None, weight, _stats(name, original, weight, done, block,
                                            original.numel(), levels.numel(), entropy),
                       parts, recipe)


def _decoded(entry: PrunedTensor | QuantizedTensor, dtype: torch.dtype) -> torch.Tensor:
    """The tensor the file decodes ``entry`` to; checked against what the loop used."""
    return to_torch(decode_tensor(entry), DTYPE_NAMES[dtype]).reshape(entry.shape)


def _stats(name: str, original: torch.Tensor, weight: torch.Tensor, done: LayerOutcome,
           block: int, kept: int, clusters: int | None, entropy: float | None
           ) -> GreedyLayerStats:
    if not torch.equal(weight, done.weight):  # the file must hold exactly what was scored
        raise RuntimeError(f"internal error: {name!r} does not decode to the greedy weights")
    unit = LayerInput(name, original, torch.ones_like(original, dtype=torch.float64), None)
    distortion, zero = layer_distortion(unit, weight)  # Σ (w − ŵ)², Σ w²
    return GreedyLayerStats(
        name=name, shape=tuple(original.shape), numel=original.numel(), kept=kept,
        clusters=clusters, distortion=distortion,
        relative_distortion=distortion / zero if zero > 0 else 0.0, entropy_bits=entropy,
        replaced=int(done.replaced.sum()), refreshes=done.refreshes, block=block,
    )


def _kept_fraction(config: GreedyConfig, compressed: CompressedModel, summary: Any) -> float:
    layers = compressed.layers.values()
    return sum(layer.kept for layer in layers) / sum(layer.numel for layer in layers)


ALPHA = Flag("--alpha", "alpha", float, aliases=("--greedy-alpha",),
             help="greedy: fraction of each layer replaced (default 0.9)")
SCORE = Flag("--greedy-score", "score", choices=("second-order", "exact"),
             help="second-order (default) or exact: forward passes per weight (small models)")


def _greedy_spec(**kwargs: Any) -> MethodSpec:
    """The two greedy modes share a config, handler, needs and sweep options."""
    return MethodSpec(config=GreedyConfig, handler=handle_greedy, uses_importance=False,
                      needs=frozenset({"calibration"}), sweep_defaults={"alpha": 0.9},
                      sweep_options=(ALPHA,), **kwargs)


register(_greedy_spec(
    name="greedy-prune", label="greedy pruning", fixed={"mode": PRUNE}, example={"p": 0.5},
    flags=(Flag("--keep-prob", "p", float, short="-p", help="t = w·Bernoulli(p)/p (default "
                "0.3)"), ALPHA, SCORE, STRUCTURED),
    sweep=SweepAxis("p", (0.1, 0.2, 0.3, 0.5), "--keep-prob", float,
                    "greedy pruning: keep probabilities p", aliases=("--greedy-p",), short="-p"),
    setting=lambda config: f"p={config.p:g}", paper_ratio=_kept_fraction,
    style={"color": "tab:olive", "linestyle": ":"},
))
register(_greedy_spec(
    name="greedy-quantize", label="greedy quantization", fixed={"mode": QUANTIZE},
    example={"k": 2}, flags=(Flag("--grid-k", "k", int, help="stochastic rounding to spacing "
                                  "M/k (default 4)"), ALPHA, SCORE),
    sweep=SweepAxis("k", (1, 2, 4, 8), "--grid-k", int, "greedy quantization: grid spacing M/k",
                    aliases=("--greedy-k",)),
    setting=lambda config: f"k={config.k}", style={"color": "tab:cyan", "linestyle": ":"},
))
