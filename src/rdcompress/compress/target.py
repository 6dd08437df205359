"""The model-level handler of ``AllocateConfig``: fit a real file to a target, open or closed loop.

Open loop (``target_bytes``, ``target_ratio``): the layers' byte budget is the target less the
fixed part of the file (raw tensors, header, manifest), measured by encoding the file; if the
encoded file still exceeds the target (the manifest's numbers vary with the choice), the budget
is lowered by the excess and the allocation redone, so the file returned is never over target.

Closed loop (``max_kl``, ``max_accuracy_drop``): a bisection on the layers' byte budget (in log
scale) between the smallest menu and the raw model; each step allocates at that budget, loads
the exact decoded weights into a copy of the model and measures the target quantity on the
calibration data. The smallest budget measured within the target wins (the raw model, KL 0, is
always within it). Every measured point is kept with its prediction (``report["trace"]``).
"""

from __future__ import annotations

import copy
import hashlib
import math
from typing import Any

import numpy as np
import torch

from rdcompress.codec import RdzSummary, encode_rdz
from rdcompress.compress._layers import fp32_bytes
from rdcompress.compress.allocate import (
    QUANTIZERS,
    TARGETS,
    AllocateConfig,
    allocation_rows,
    build_menus,
    choose,
    layer_result,
    weights_of,
)
from rdcompress.compress.context import Context
from rdcompress.compress.registry import Flag, MethodSpec, SweepAxis, register
from rdcompress.errors import ConfigError
from rdcompress.kernels.allocate import Allocation
from rdcompress.units import parse_size

_FIT_ATTEMPTS = 8


def handle_allocate(ctx: Context, config: AllocateConfig) -> Any:
    """Compress ``ctx``'s layers at one slope to meet ``config``'s target; a CompressedModel
    whose ``report`` holds the per-layer allocation and, closed loop, the measured trace."""
    menus = _menus(ctx, config)
    name, value = config.target
    if not config.closed_loop:
        original = fp32_bytes(ctx.model.state_dict())
        target = int(value) if name == "target_bytes" else int(math.floor(original / value))
        compressed, allocation, summary = _fit_file(ctx, config, menus, target, name, value)
        compressed.report = _report(ctx, config, menus, allocation, compressed, summary)
        return compressed
    trace: list[dict] = []
    budget, allocation = _closed_loop(ctx, config, menus, trace)
    compressed = _assemble(ctx, config, menus, allocation)
    _, summary = encode_rdz(compressed.tensors, compressed.manifest, ctx.coder)
    report = _report(ctx, config, menus, allocation, compressed, summary)
    report["trace"] = trace
    report["measured"] = next(t for t in trace if t["budget"] == budget)
    compressed.report = report
    return compressed


def _menus(ctx: Context, config: AllocateConfig) -> list:
    """Every layer's candidates, from ``ctx.cache`` when an earlier call computed the same."""
    key = None
    if ctx.cache is not None:
        digest = hashlib.blake2b(digest_size=20)
        settings = {k: v for k, v in config.to_dict().items() if k not in TARGETS}
        digest.update(repr((sorted(settings.items()), ctx.coder, ctx.objective,
                            id(ctx.calibration) if config.uses_moments else None)).encode())
        for layer in ctx.layers:
            digest.update(layer.name.encode())
            for tensor in (layer.weight, layer.I, layer.H):
                if tensor is not None:
                    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        key = ("allocate-menus", digest.hexdigest())
        if key in ctx.cache:
            return ctx.cache[key]
    if config.uses_moments:
        _attach_moments(ctx)
    menus = build_menus(ctx.layers, config, ctx.coder)
    if key is not None and ctx.cache is not None:
        ctx.cache[key] = menus
    return menus


def _attach_moments(ctx: Context) -> None:
    """Input second moments of the calibration data for every Linear/Conv2d layer compressed
    (``layer.statistics["input_moment"]``) unless the caller gave them."""
    from rdcompress.lowrank.moments import ROWS, collect_input_moments

    modules = dict(ctx.model.named_modules())
    names = [layer.name for layer in ctx.layers
             if "input_moment" not in layer.statistics and layer.name.endswith(".weight")
             and type(modules.get(layer.name.removesuffix(".weight"))) in ROWS]
    if not names:
        return
    assert ctx.calibration is not None  # compress() checks needs first
    moments = collect_input_moments(ctx.model, ctx.calibration, names=names,
                                    batch_fn=ctx.batch_fn).moments()
    for layer in ctx.layers:
        if layer.name in moments:
            layer.statistics["input_moment"] = moments[layer.name]


def _assemble(ctx: Context, config: AllocateConfig, menus, allocation: Allocation) -> Any:
    results = {layer.name: layer_result(layer, menu[int(j)])
               for layer, menu, j in zip(ctx.layers, menus, allocation.choice, strict=True)}
    return ctx.assemble(results, config)


def _fit_file(ctx: Context, config: AllocateConfig, menus, target: int, name: str,
              value: float) -> tuple[Any, Allocation, RdzSummary]:
    """The least-distortion allocation whose encoded file is <= ``target`` bytes."""
    cheapest = choose(menus, float(sum(min(c.bytes for c in menu) for menu in menus)), config)
    smallest_model = _assemble(ctx, config, menus, cheapest)
    data, _ = encode_rdz(smallest_model.tensors, smallest_model.manifest, ctx.coder)
    smallest = len(data)
    if smallest > target:
        what = f"{name}={value:g}" + (f" ({target} bytes)" if name == "target_ratio" else "")
        raise ConfigError(
            f"{what} is below the smallest file this model can be written to: {smallest} bytes "
            f"(every layer at its coarsest grid within max_relative_distortion="
            f"{config.max_relative_distortion:g}, plus {smallest - int(cheapest.rate)} bytes of "
            "raw tensors, header and manifest); ask for at least that many bytes, or raise "
            "max_relative_distortion to offer coarser grids"
        )
    fixed = smallest - float(cheapest.rate)
    for attempt in range(_FIT_ATTEMPTS):
        allocation = choose(menus, max(target - fixed, cheapest.rate), config)
        compressed = _assemble(ctx, config, menus, allocation)
        data, summary = encode_rdz(compressed.tensors, compressed.manifest, ctx.coder)
        if len(data) <= target:
            return compressed, allocation, summary
        # The fixed part was larger than measured (the manifest's numbers change with the
        # choice): shrink the layers' budget by the excess, doubling it on every retry.
        fixed += (len(data) - target) * 2 ** attempt
    raise ConfigError(f"could not fit the file into {target} bytes in {_FIT_ATTEMPTS} attempts "
                      f"(last {len(data)} bytes); ask for a few more bytes")


def _closed_loop(ctx: Context, config: AllocateConfig, menus,
                 trace: list[dict]) -> tuple[float, Allocation]:
    """Smallest byte budget whose allocation measures within the target on calibration data."""
    from rdcompress.evaluate import classification_metrics, collect_outputs

    name, value = config.target
    assert ctx.calibration is not None  # compress() checks needs first
    reference, labels = collect_outputs(ctx.model, ctx.calibration, batch_fn=ctx.batch_fn)
    original_accuracy = float((reference.argmax(1) == labels).double().mean())
    probe = copy.deepcopy(ctx.model)
    params = dict(probe.named_parameters())

    def measure(budget: float) -> tuple[bool, Allocation]:
        allocation = choose(menus, budget, config)
        with torch.no_grad():
            for key, weight in weights_of(ctx.layers, menus, allocation.choice).items():
                params[key].copy_(weight)
        outputs, _ = collect_outputs(probe, ctx.calibration, batch_fn=ctx.batch_fn)
        metrics = classification_metrics(outputs, labels, reference)
        drop = 100.0 * (original_accuracy - float(metrics.accuracy or 0.0))
        measured = float(metrics.kl or 0.0) if name == "max_kl" else drop
        trace.append({
            "budget": budget, "layer_bytes": float(allocation.rate),
            "predicted_distortion": float(allocation.distortion),
            "predicted_kl": _predicted_kl(ctx, allocation),
            "measured_kl": metrics.kl, "accuracy": metrics.accuracy,
            "original_accuracy": original_accuracy, "accuracy_drop": drop,
        })
        return measured <= value, allocation

    low = float(sum(min(c.bytes for c in menu) for menu in menus))
    high = float(sum(max(c.bytes for c in menu) for menu in menus))
    ok, allocation = measure(low)
    if ok:
        return low, allocation
    ok, best_allocation = measure(high)
    if not ok:  # only a non-deterministic model can miss with every layer raw
        raise ConfigError(f"{name}={value:g} is not met even with every layer stored raw "
                          f"(measured {trace[-1]}); is the model deterministic in eval mode?")
    best, lo, hi = high, low, high
    for _ in range(config.bisection_steps):
        mid = math.sqrt(lo * hi)
        ok, allocation = measure(mid)
        if ok:
            hi, best, best_allocation = mid, mid, allocation
        else:
            lo = mid
        if hi / lo < 1.002:
            break
    return best, best_allocation


def _predicted_kl(ctx: Context, allocation: Allocation) -> float | None:
    """½ Σ I (w − ŵ)²: the Fisher objective's second-order prediction of the KL (nats)."""
    return 0.5 * float(allocation.distortion) if ctx.objective == "fisher" else None


def _report(ctx: Context, config: AllocateConfig, menus, allocation: Allocation, compressed,
            summary: RdzSummary) -> dict:
    sizes = {name: summary.layer_bytes(name) for name in compressed.layers}
    file_bytes = summary.file_bytes
    name, value = config.target
    original = int(compressed.manifest["original_bytes"])
    return {
        "target": {name: value}, "file_bytes": file_bytes, "ratio": original / file_bytes,
        "original_bytes": original, "slope": float(allocation.slope),
        "predicted_distortion": float(allocation.distortion),
        "lower_bound": float(allocation.lower_bound), "search": allocation.method,
        "predicted_kl": _predicted_kl(ctx, allocation),
        "candidates": int(sum(len(menu) for menu in menus)),
        "layers": allocation_rows(ctx.layers, menus, allocation, sizes),
    }


def spearman(x: list[float], y: list[float]) -> float:
    """Rank correlation of two equally long lists (average ranks for ties)."""
    from scipy.stats import spearmanr

    if len(x) < 2:
        return float("nan")
    return float(spearmanr(np.asarray(x), np.asarray(y)).statistic)


TARGET_REQUIRED = "a target: --target-size, --target-ratio, --max-kl or --max-accuracy-drop"


def _target(flag: str, field: str, kind: Any, help: str, metavar: str) -> Flag:
    return Flag(flag, field, kind, help=help, group="target", required=TARGET_REQUIRED,
                metavar=metavar)


def _target_label(config: AllocateConfig) -> str:
    name, value = config.target
    return f"{name}={value:g}"


TARGET_FLAGS = (
    _target("--target-size", "target_bytes", parse_size, "largest file, e.g. 150KB, 1.5MB or "
            "120000 (bytes; KB = 1000)", "SIZE"),
    _target("--target-ratio", "target_ratio", float, "file at least R times smaller than the "
            "fp32 state_dict", "R"),
    _target("--max-kl", "max_kl", float, "smallest file whose measured E_x KL(compressed || "
            "original) on --data is at most NATS", "NATS"),
    _target("--max-accuracy-drop", "max_accuracy_drop", float, "smallest file whose top-1 "
            "accuracy on --data is at most POINTS percentage points below the original's",
            "POINTS"),
)
QUANTIZER = Flag("--quantizer", "quantizer", choices=QUANTIZERS,
                 help="how each grid is filled: round (nearest level, default), ecsq "
                      "(entropy-constrained), gptq (error compensation through the input second "
                      "moments of --data)")
register(MethodSpec(
    name="allocate", config=AllocateConfig, handler=handle_allocate, label="allocation",
    example={"target_bytes": 2000}, implied_by=tuple(flag.flag for flag in TARGET_FLAGS),
    flags=(*TARGET_FLAGS, QUANTIZER, Flag("--steps-per-octave", "steps_per_octave", int,
                                          help="grid steps tried per factor of 2 (default 2)")),
    sweep=SweepAxis("target_ratio", (8.0, 12.0, 16.0, 24.0, 32.0), "--target-ratios", float,
                    "allocation: file ratios to reach (fp32 bytes / file bytes)"),
    sweep_options=(QUANTIZER,), setting=_target_label, coder="ctx",  # measured: smaller
    #   files at every target on the MNIST net and LeNet-5 (docs/results/allocation)
    style={"color": "tab:green", "linestyle": "-"},
))
