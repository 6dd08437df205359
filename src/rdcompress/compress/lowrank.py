"""Low-rank factorization W ≈ A·B of each layer (companion paper §2): config + handler.

The metric picks the projection (``rdcompress.lowrank.factorize``): "svd" (identity), "fwsvd"
(row-Fisher-weighted), "weighted" (element-wise by the objective's I, iterative), "whiten"
(input second moments, from ``compress(layer_statistics={name: {"input_moment": M}})``).
Ranks: one ``rank`` for all layers, or a ``ratio`` of the dense layers' numbers kept, spread
"uniform" (every layer keeps the ratio) or "global" (``allocate_ranks``: greedy on the
objective's distortion Σ I (W − AB)² of each layer's rank curve). "weighted" allocates with the
FWSVD curve (its own fit is iterative per rank) and then refines at the chosen rank.

Storage of a factorized layer: parts A (out, r) and B (r, d) in the file (``compose.py``) as
"float32" / "float16" raw numbers, or "quantized" (B gets a weighted codebook, A is refit to the
decoded B in the metric and then quantized: each factor pays for the other's rounding).
A layer kept dense (its factors would cost at least out·d, or a rank above ``max_useful_rank``)
is stored like the factors: float32 raw, float16 raw (a one-part "sum" composite), or
quantized with the same k.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from rdcompress.codec import RawTensor
from rdcompress.compress._layers import (
    LayerInput,
    LayerResult,
    _stats,
    quantized_result,
    run_quantizer,
)
from rdcompress.compress.compose import LOWRANK, SUM, compose_weight, make_recipe, part_name
from rdcompress.compress.context import MOMENT_KEY, Context
from rdcompress.compress.prune_quantize import COMBINE_CLUSTERS
from rdcompress.compress.quantize import ALGORITHM, ALGORITHMS, BITS, CLUSTERS, MAX_BITS
from rdcompress.compress.registry import Flag, MethodSpec, SweepAxis, register
from rdcompress.errors import ConfigError
from rdcompress.lowrank.allocate import (
    DENSE,
    allocate_ranks,
    distortion_curve,
    layer_cost,
    uniform_ranks,
)
from rdcompress.lowrank.factorize import (
    as_matrix,
    check_rank,
    fwsvd,
    max_useful_rank,
    truncated_svd,
    weighted_lowrank,
    whitened_svd,
    whitening,
)

METRICS = ("svd", "fwsvd", "weighted", "whiten")
ALLOCATIONS = ("uniform", "global")
STORAGES = ("float32", "float16", "quantized")


@dataclass
class LowRankConfig:
    metric: str = "svd"  # "svd" | "fwsvd" | "weighted" | "whiten" (see module docstring)
    rank: int | None = None  # one rank for every layer; or give ``ratio``
    ratio: float | None = None  # fraction of the dense layers' numbers kept, in (0, 1]
    allocation: str = "uniform"  # ratio only: "uniform" per layer, or "global" by the objective
    storage: str = "float32"  # factors as "float32", "float16" or "quantized" (k-means + ANS)
    clusters: int | None = None  # quantized storage: k per factor; or give ``bits``
    bits: int | None = None  # quantized storage: k = 2**bits
    algorithm: str = "lloyd"  # quantizer of the factors (as QuantizeConfig.algorithm, no lam)
    iters: int = 10  # metric="weighted": alternating least-squares sweeps (from FWSVD)
    eps: float = 1e-6  # metric="whiten": damping of E[x xᵀ], relative to its mean diagonal


    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"metric={self.metric!r} is unknown; use one of {METRICS}.")
        if (self.rank is None) == (self.ratio is None):
            raise ConfigError(f"give exactly one of rank or ratio; got rank={self.rank!r}, "
                              f"ratio={self.ratio!r}.")
        if self.rank is not None and not (_is_int(self.rank) and self.rank >= 1):
            raise ConfigError(f"rank={self.rank!r} must be an integer >= 1.")
        if self.ratio is not None:
            if not (isinstance(self.ratio, (int, float)) and not isinstance(self.ratio, bool)
                    and 0 < self.ratio <= 1):
                raise ConfigError(f"ratio={self.ratio!r} must be a number in (0, 1] (the "
                                  "fraction of the dense layers' numbers kept).")
            self.ratio = float(self.ratio)
        if self.allocation not in ALLOCATIONS:
            raise ConfigError(f"allocation={self.allocation!r}; use one of {ALLOCATIONS}.")
        if self.allocation == "global" and self.ratio is None:
            raise ConfigError("allocation='global' spreads a budget: give ratio, not rank.")
        if self.storage not in STORAGES:
            raise ConfigError(f"storage={self.storage!r} is unknown; use one of {STORAGES}.")
        quantized = self.storage == "quantized"
        if quantized and (self.clusters is None) == (self.bits is None):
            raise ConfigError("storage='quantized' needs exactly one of clusters or bits; got "
                              f"clusters={self.clusters!r}, bits={self.bits!r}.")
        if not quantized and (self.clusters is not None or self.bits is not None):
            raise ConfigError(f"clusters/bits apply to storage='quantized' only, not "
                              f"{self.storage!r}.")
        if self.bits is not None and not (_is_int(self.bits) and 1 <= self.bits <= MAX_BITS):
            raise ConfigError(f"bits={self.bits!r} must be an integer in [1, {MAX_BITS}].")
        if self.clusters is not None and not (_is_int(self.clusters) and self.clusters >= 1):
            raise ConfigError(f"clusters={self.clusters!r} must be an integer >= 1.")
        if self.algorithm not in ALGORITHMS or self.algorithm == "entropy":
            raise ConfigError(f"algorithm={self.algorithm!r}; use 'lloyd', 'quartic' or "
                              "'optimal' for the factors.")
        if not (_is_int(self.iters) and self.iters >= 0):
            raise ConfigError(f"iters={self.iters!r} must be an integer >= 0.")
        if not (isinstance(self.eps, (int, float)) and 0 <= self.eps < float("inf")):
            raise ConfigError(f"eps={self.eps!r} must be a finite number >= 0.")

    @property
    def method(self) -> str:
        """"lowrank+quantize" when the factors are quantized, else "lowrank"."""
        return "lowrank+quantize" if self.storage == "quantized" else "lowrank"

    @property
    def needs(self) -> set[str]:
        return {"input_moments"} if self.metric == "whiten" else set()

    @property
    def k(self) -> int | None:
        if self.storage != "quantized":
            return None
        return int(self.clusters) if self.clusters is not None else 2 ** int(self.bits or 0)

    def to_dict(self) -> dict:
        return {"method": self.method, **asdict(self), "k": self.k}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def handle_lowrank(layers: list[LayerInput], config: LowRankConfig) -> dict[str, LayerResult]:
    matrices = {layer.name: as_matrix(layer.weight) for layer in layers}  # (out, d) float64
    shapes = {name: (m.shape[0], m.shape[1]) for name, m in matrices.items()}
    moments = _moments(layers, shapes) if config.metric == "whiten" else {}
    ranks, prefixes = _ranks(layers, config, matrices, shapes, moments)
    results = {}
    for layer in layers:
        rank = ranks[layer.name]
        if rank is DENSE:
            results[layer.name] = _dense_result(layer, config)
            continue
        W, I = matrices[layer.name], layer.I.reshape(shapes[layer.name])
        if layer.name in prefixes:
            A, B = prefixes[layer.name]
            A, B = A[:, :rank], B[:rank]
        else:
            A, B = _factorize(config, W, I, rank, moments.get(layer.name))
        if config.metric == "weighted":
            A, B = weighted_lowrank(W, I, rank, config.iters, init=(A, B))
        results[layer.name] = _factor_result(layer, config, W, I, A, B, moments.get(layer.name))
    return results


def _moments(layers: list[LayerInput], shapes: dict) -> dict[str, torch.Tensor]:
    moments = {}
    for layer in layers:
        moment = layer.statistics.get(MOMENT_KEY)
        if moment is None:
            raise ConfigError(
                f"metric='whiten' needs the input second moment of layer {layer.name!r}; "
                "collect them with rdcompress.lowrank.collect_input_moments(model, loader) and "
                "pass compress(..., layer_statistics=moments.layer_statistics())."
            )
        d = shapes[layer.name][1]
        if tuple(moment.shape) != (d, d):
            raise ConfigError(f"input moment of {layer.name!r} has shape {tuple(moment.shape)}; "
                              f"the weight has d={d} inputs, so expected ({d}, {d}).")
        moments[layer.name] = moment.to(torch.float64)
    return moments


def _factorize(config: LowRankConfig, W: torch.Tensor, I: torch.Tensor, rank: int,
               moment: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if config.metric == "svd":
        return truncated_svd(W, rank)
    if config.metric in ("fwsvd", "weighted"):  # weighted starts from FWSVD
        return fwsvd(W, I, rank)
    assert moment is not None  # _moments checked every layer
    return whitened_svd(W, moment, rank, config.eps)


def _ranks(layers: list[LayerInput], config: LowRankConfig, matrices: dict, shapes: dict,
           moments: dict) -> tuple[dict[str, int | None], dict[str, tuple]]:
    """Per-layer ranks (None = dense) and, for global allocation, the full prefix factors."""
    if config.rank is not None:
        ranks: dict[str, int | None] = {}
        for name, (out, d) in shapes.items():
            check_rank(config.rank, out, d, f"layer {name!r}")
            ranks[name] = config.rank if config.rank <= max_useful_rank(out, d) else DENSE
        return ranks, {}
    assert config.ratio is not None
    if config.allocation == "uniform":
        return uniform_ranks(shapes, config.ratio), {}
    prefixes, curves = {}, {}
    for layer in layers:
        out, d = shapes[layer.name]
        top = max_useful_rank(out, d)
        W, I = matrices[layer.name], layer.I.reshape(out, d)
        if top == 0:
            curves[layer.name] = distortion_curve(W, I, W[:, :0], W[:0])
            continue
        A, B = _factorize(config, W, I, top, moments.get(layer.name))
        prefixes[layer.name] = (A, B)
        curves[layer.name] = distortion_curve(W, I, A, B)
    budget = config.ratio * sum(layer_cost(shape, DENSE) for shape in shapes.values())
    return allocate_ranks(curves, shapes, budget), prefixes


def _factor_result(layer: LayerInput, config: LowRankConfig, W: torch.Tensor, I: torch.Tensor,
                   A: torch.Tensor, B: torch.Tensor, moment: torch.Tensor | None) -> LayerResult:
    name, dtype = layer.name, layer.weight.dtype
    names = part_name(name, "A"), part_name(name, "B")
    clusters, entropy = None, None
    if config.storage == "quantized":
        I_B = torch.einsum("ij,ik->kj", I, A * A)  # (r, d): diagonal of the product's metric
        B_part, B_hat = _quantize_factor(names[1], B, I_B, config, dtype)
        A = _refit_left(config, W, I, B_hat.to(torch.float64), moment)  # pays for B's rounding
        I_A = torch.einsum("ij,kj->ik", I, B_hat.to(torch.float64) ** 2)  # (out, r)
        A_part, A_hat = _quantize_factor(names[0], A, I_A, config, dtype)
        parts = [A_part.entry, B_part.entry]
        clusters = config.k
        entropy = (A_part.entropy * A_hat.numel() + B_part.entropy * B_hat.numel()) \
            / (A_hat.numel() + B_hat.numel())  # bits per stored factor number
    else:
        storage = torch.float16 if config.storage == "float16" else dtype
        A_hat, B_hat = A.to(storage), B.to(storage)  # (out, r), (r, d): what the file holds
        parts = [RawTensor(names[0], A_hat), RawTensor(names[1], B_hat)]
    recipe = make_recipe(LOWRANK, name, ["A", "B"], tuple(layer.weight.shape), dtype)
    weight = compose_weight(name, recipe, {names[0]: A_hat, names[1]: B_hat})
    stats = _stats(layer, weight, layer.weight.numel(), clusters, entropy)
    stats.rank = A.shape[1]
    return LayerResult(None, weight, stats, parts, recipe)


@dataclass
class _QuantizedFactor:
    entry: object  # QuantizedTensor
    entropy: float  # bits per number


def _quantize_factor(name: str, factor: torch.Tensor, importance: torch.Tensor,
                     config: LowRankConfig, dtype: torch.dtype
                     ) -> tuple[_QuantizedFactor, torch.Tensor]:
    """(entry, decoded values) of one factor quantized with a codebook of k centroids."""
    part = LayerInput(name, factor.to(dtype), importance.clamp_min(0), None)
    k = min(int(config.k or 1), factor.numel())
    result = run_quantizer(part, k, config.algorithm, 0.0, "quantile", 300)
    quantized = quantized_result(part, result, None)
    return _QuantizedFactor(quantized.entry, float(result.entropy_bits)), quantized.weight


def _refit_left(config: LowRankConfig, W: torch.Tensor, I: torch.Tensor, B: torch.Tensor,
                moment: torch.Tensor | None) -> torch.Tensor:
    """argmin_A of the metric's error ||W − A B|| for a fixed B (r, d): A (out, r)."""
    if config.metric == "whiten":
        assert moment is not None
        S = whitening(moment, config.eps)
        M = S @ S.T  # the damped moment (d, d)
        return _solve_right(W @ M @ B.T, B @ M @ B.T)
    if config.metric == "weighted":
        from rdcompress.lowrank.factorize import _weighted_rows

        return _weighted_rows(W, I.to(torch.float64), B, 1e-10)
    # svd, and fwsvd (a row-constant weight scales each row's least squares, not its solution)
    return _solve_right(W @ B.T, B @ B.T)


def _solve_right(rhs: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """X with X gram = rhs (gram (r, r) symmetric PSD), ridge-stabilized."""
    scale = float(gram.diagonal().mean()) or 1.0
    gram = gram + 1e-12 * scale * torch.eye(gram.shape[0], dtype=gram.dtype)
    return torch.linalg.solve(gram, rhs.T).T


def _dense_result(layer: LayerInput, config: LowRankConfig) -> LayerResult:
    """A layer not worth factorizing, stored in the factors' precision."""
    if config.storage == "quantized":
        k = min(int(config.k or 1), layer.weight.numel())
        return quantized_result(layer, run_quantizer(layer, k, config.algorithm, 0.0,
                                                     "quantile", 300), None)
    if config.storage == "float16" and layer.weight.dtype != torch.float16:
        name = part_name(layer.name, "D")
        half = layer.weight.to(torch.float16)
        recipe = make_recipe(SUM, layer.name, ["D"], tuple(layer.weight.shape),
                             layer.weight.dtype)
        weight = compose_weight(layer.name, recipe, {name: half})
        return LayerResult(None, weight, _stats(layer, weight, weight.numel(), None, None),
                           [RawTensor(name, half)], recipe)
    weight = layer.weight.clone()
    return LayerResult(RawTensor(layer.name, weight),
                       weight, _stats(layer, weight, weight.numel(), None, None))


def handle_lowrank_method(ctx: Context, config: LowRankConfig) -> dict[str, LayerResult]:
    """The registered handler: whitening collects the input moments it lacks from the
    calibration data."""
    if config.metric == "whiten":
        ctx.fill_input_moments()
    return handle_lowrank(ctx.layers, config)


def sweep_lowrank(fields: dict[str, Any], objective: str) -> dict[str, Any]:
    """A sweep's low rank for an objective: with I = 1 (baseline) the weighted and FWSVD
    projections are plain SVD; quantized storage without a k gets 4-bit codebooks."""
    if objective == "baseline" and fields.get("metric") in ("weighted", "fwsvd"):
        fields = {**fields, "metric": "svd"}
    if fields.get("storage") == "quantized" and fields.get("clusters") is None \
            and fields.get("bits") is None:
        fields = {**fields, "bits": 4}
    return fields


def _needs_quantized(flag: Flag) -> Flag:
    return replace(flag, requires={"storage": "quantized"}, required=None)


RANK = Flag("--rank", "rank", int, help="one rank for every layer (or give --keep)")
LOWRANK_KEEP = Flag("--keep", "ratio", float, aliases=("--ratio",),
                    help="fraction of the dense layers' numbers kept, in (0, 1]")
METRIC = Flag("--lowrank-metric", "metric", choices=METRICS, aliases=("--metric",),
              help="projection: svd (identity; default), fwsvd (row Fisher), weighted "
                   "(element-wise I, iterative), whiten (input moments of --data)")
ALLOCATION = Flag("--allocation", "allocation", choices=ALLOCATIONS,
                  help="with --keep: every layer keeps the fraction (uniform, default) or ranks "
                       "chosen by the objective at the global budget (global)")
STORAGE = Flag("--lowrank-storage", "storage", choices=STORAGES, aliases=("--factor-storage",),
               help="how the factors are stored (default float32); quantized uses "
                    "--clusters/--bits")
ITERS = Flag("--lowrank-iters", "iters", int,
             help="alternating least-squares sweeps of --lowrank-metric weighted (default 10)")
EPS = Flag("--whiten-eps", "eps", float,
           help="damping of E[x xᵀ] for --lowrank-metric whiten, relative (default 1e-6)")
SHARED = (RANK, LOWRANK_KEEP, METRIC, ALLOCATION)
RATIO_AXIS = SweepAxis("ratio", (0.05, 0.1, 0.2, 0.3, 0.5), "--lowrank-keep", float,
                       "low rank: fraction of the layers' numbers kept, ranks allocated globally "
                       "by each objective", aliases=("--ranks",))
SWEEP_METRIC = replace(METRIC, help="low rank projection for non-baseline objectives: weighted "
                       "by I (default), FWSVD rows, plain SVD, or whitened by the calibration "
                       "inputs' second moments; the baseline is plain SVD")


def _ratio_label(config: LowRankConfig) -> str:
    return f"ratio={config.ratio:g}" if config.ratio is not None else f"rank={config.rank}"


register(MethodSpec(
    name="lowrank", config=LowRankConfig, handler=handle_lowrank_method, label="low rank",
    example={"rank": 2}, flags=(*SHARED, STORAGE, _needs_quantized(CLUSTERS),
                                _needs_quantized(BITS), ALGORITHM, ITERS, EPS),
    sweep=RATIO_AXIS, sweep_defaults={"allocation": "global", "storage": "float16",
                                      "metric": "weighted"},
    sweep_options=(SWEEP_METRIC, replace(STORAGE, help="how the factors are stored (sweep "
                                         "default float16; quantized: 4-bit codebooks)")),
    adapt=sweep_lowrank, setting=_ratio_label,
    paper_ratio=lambda config, compressed, summary: config.ratio,  # fraction of numbers kept
    style={"color": "tab:orange", "linestyle": "-."},
))
register(MethodSpec(
    name="lowrank+quantize", config=LowRankConfig, handler=handle_lowrank_method,
    label="low rank + quantized factors", example={"rank": 2, "clusters": 4},
    fixed={"storage": "quantized"},
    flags=(*SHARED, CLUSTERS, BITS, ALGORITHM, ITERS, EPS), sweep=RATIO_AXIS,
    sweep_defaults={"allocation": "global", "clusters": 16, "metric": "weighted"},
    sweep_options=(SWEEP_METRIC, COMBINE_CLUSTERS), adapt=sweep_lowrank,
    setting=lambda config: f"{_ratio_label(config)},k={config.k}",
    style={"color": "tab:red", "linestyle": (0, (3, 1, 1, 1, 1, 1))},
))
