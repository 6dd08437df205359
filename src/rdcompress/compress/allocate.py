"""Compress to a target: one slope for every layer (the water-filling rule across a network).

Every other method applies one setting to every layer. ``AllocateConfig`` instead gives each
layer a menu of real candidates — its weights on a uniform grid ``step · Z`` at a range of steps,
each quantized by importance-weighted entropy-constrained scalar quantization
(``kernels.uniform``), each costed in the bytes the real coder writes for it (codebook and
stream), with the predicted distortion Σ I (w − ŵ)² [+ H (w − ŵ)⁴]; storing the layer raw is
always on the menu — and picks one candidate per layer at one common slope λ
(``kernels.allocate``: the lower convex hulls, the Lagrangian path, a greedy finish), so that
no byte could move between layers and buy less distortion.

Targets (exactly one):
- ``target_bytes`` / ``target_ratio``: the smallest predicted distortion whose whole ``.rdz``
  file (headers, manifest, raw tensors, everything) is at most that many bytes, or at least that
  many times smaller than the fp32 state_dict. Open loop: measured on the file only.
- ``max_kl`` / ``max_accuracy_drop``: the smallest file whose MEASURED output distortion on the
  calibration data, E_x KL(f_ŵ(x) ‖ f_w(x)) in nats or the top-1 accuracy drop in percentage
  points, is within the budget: a bisection over the byte budget, each step a real forward pass
  (closed loop; the prediction is only what orders the candidates).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import torch

from rdcompress.codec import DQTensor, QuantizedTensor, RawTensor, entry_bytes
from rdcompress.codec.tensors import decode_tensor, to_torch
from rdcompress.compress._layers import DTYPE_NAMES, LayerInput, LayerResult
from rdcompress.compress._layers import _stats as layer_stats
from rdcompress.errors import ConfigError
from rdcompress.kernels.allocate import METHODS as SEARCHES
from rdcompress.kernels.allocate import Allocation, allocate_to_budget
from rdcompress.kernels.gptq import gptq_factor, gptq_levels, output_error
from rdcompress.kernels.trellis import RateModel, dq_reconstruct, dq_trellis, gptq_dq_levels
from rdcompress.kernels.uniform import ecsq_uniform, grid_step, reconstruct
from rdcompress.progress import progress

TARGETS = ("target_bytes", "target_ratio", "max_kl", "max_accuracy_drop")
QUANTIZERS = ("round", "ecsq", "gptq", "dq", "dq-rdo", "gptq-dq")
DQ_QUANTIZERS = ("dq", "dq-rdo", "gptq-dq")


@dataclass
class AllocateConfig:
    """Compress every layer on its own uniform grid, the grids chosen at one R–D slope.

    Give exactly one target: ``target_bytes`` (file bytes), ``target_ratio`` (fp32 bytes / file
    bytes), ``max_kl`` (nats, measured on calibration data) or ``max_accuracy_drop``
    (percentage points of top-1 accuracy on labelled calibration data).
    """

    target_bytes: int | None = None
    target_ratio: float | None = None
    max_kl: float | None = None
    max_accuracy_drop: float | None = None
    step_range: tuple[float, float] = (2.0 ** -7, 16.0)  # grid steps, × the layer's weight RMS
    steps_per_octave: int = 2  # menu density: steps are step_range[0] · 2^(j / this)
    quantizer: str = "round"  # "round" (nearest level), "ecsq" (entropy-constrained, by
    #   rd_factors), "gptq" (rounding with error compensation through the input second
    #   moments of calibration data; needs calibration), "dq" (dependent / trellis-coded
    #   quantization, NNC's DQ: the Viterbi on Σ I δ² alone; format version 4), "dq-rdo"
    #   (also the trellis on Σ I δ² + λ·bits at each rd_factor: measured harmful, the
    #   diagonal prediction misjudges the weights it zeroes) or "gptq-dq" (the trellis with
    #   GPTQ's error feedback, 4 survivors per row; needs calibration; layers without input
    #   moments get "dq")
    rd_factors: tuple[float, ...] = (0.3, 1.0)  # ecsq, dq-rdo: λ = c · mean(I) · step² per c
    max_relative_distortion: float = 0.5  # trust region of the quadratic prediction: no
    #   candidate may lose more than this fraction of its layer's Σ I w² (what zeroing it
    #   would lose); far outside it the prediction is worthless (a layer nearly zeroed "costs"
    #   little by Σ I δ² and destroys the model)
    importance_floor: float = 1e-3  # I below this × the layer's mean I is raised to it: an
    #   importance of 0 estimated on samples means "not seen to matter", and a weight moved
    #   far for free can matter on other inputs (e.g. it revives a channel dead on the samples)
    include_vectors: bool = True  # also allocate 1-D parameters (biases, norm scales), which
    #   other methods store raw (with layers=None)
    search: str = "greedy"  # kernels.allocate finish: "lagrangian", "greedy" or "exact"
    max_iter: int = 8  # ECSQ alternations per candidate
    bisection_steps: int = 10  # closed loop: forward passes at most, after the two ends

    method: ClassVar[str] = "allocate"

    def __post_init__(self) -> None:
        given = [name for name in TARGETS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ConfigError(f"give exactly one target of {', '.join(TARGETS)}; got "
                              f"{given or 'none'}")
        value = getattr(self, given[0])
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                value):
            raise ConfigError(f"{given[0]}={value!r} must be a finite number")
        if given[0] == "target_bytes" and not (isinstance(value, int) and value > 0):
            raise ConfigError(f"target_bytes={value!r} must be a whole number of bytes > 0")
        if given[0] == "target_ratio" and not value >= 1:
            raise ConfigError(f"target_ratio={value!r} must be >= 1 (fp32 bytes / file bytes)")
        if given[0] in ("max_kl", "max_accuracy_drop") and value < 0:
            raise ConfigError(f"{given[0]}={value!r} is negative: no model, not even the "
                              "original, measures below 0")
        low, high = (float(x) for x in self.step_range)
        if not (0 < low < high < math.inf):
            raise ConfigError(f"step_range={self.step_range!r} must be two numbers "
                              "0 < low < high")
        self.step_range = (low, high)
        if not (isinstance(self.steps_per_octave, int) and 1 <= self.steps_per_octave <= 16):
            raise ConfigError(f"steps_per_octave={self.steps_per_octave!r} must be 1..16")
        if self.quantizer not in QUANTIZERS:
            raise ConfigError(f"quantizer={self.quantizer!r}; use one of {QUANTIZERS}")
        self.rd_factors = tuple(float(c) for c in self.rd_factors)
        if not self.rd_factors or not all(0 <= c < math.inf for c in self.rd_factors):
            raise ConfigError(f"rd_factors={self.rd_factors!r} must be finite numbers >= 0")
        if not (isinstance(self.importance_floor, (int, float))
                and 0 <= self.importance_floor < 1):
            raise ConfigError(f"importance_floor={self.importance_floor!r} must be in [0, 1)")
        if not (isinstance(self.max_relative_distortion, (int, float))
                and 0 < self.max_relative_distortion <= 1):
            raise ConfigError(f"max_relative_distortion={self.max_relative_distortion!r} must be "
                              "in (0, 1]")
        if self.search not in SEARCHES:
            raise ConfigError(f"search={self.search!r}; use one of {SEARCHES}")
        for name in ("max_iter", "bisection_steps"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ConfigError(f"{name}={value!r} must be an integer >= 1")

    @property
    def target(self) -> tuple[str, float]:
        """(name, value) of the one target given."""
        name = next(n for n in TARGETS if getattr(self, n) is not None)
        return name, float(getattr(self, name))

    @property
    def closed_loop(self) -> bool:
        """True when the target is measured on calibration data (needs a loader)."""
        return self.target[0] in ("max_kl", "max_accuracy_drop")

    @property
    def needs(self) -> set[str]:
        """What compress() must be given: calibration data for a measured target."""
        return {"calibration"} if self.closed_loop or self.uses_moments else set()

    @property
    def uses_moments(self) -> bool:
        """True when the quantizer needs the input second moments of calibration data."""
        return self.quantizer in ("gptq", "gptq-dq")

    def steps(self, rms: float) -> np.ndarray:
        """The menu's grid steps for a layer whose weights have root mean square ``rms``."""
        low, high = self.step_range
        count = int(math.floor(math.log2(high / low) * self.steps_per_octave + 1e-9)) + 1
        return rms * low * 2.0 ** (np.arange(count) / self.steps_per_octave)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["step_range"] = list(self.step_range)
        out["rd_factors"] = list(self.rd_factors)
        return {"method": self.method, **out}


@dataclass
class Candidate:
    """One menu point of one layer: its grid, levels, coded bytes and predicted distortion."""

    bytes: int
    distortion: float
    step: float | None = None  # None: the layer stored raw
    lam: float = 0.0
    levels: np.ndarray | None = field(default=None, repr=False)  # (numel,) int32
    dq_cols: int | None = None  # dependent quantization: its state machine's row length

    @property
    def raw(self) -> bool:
        return self.step is None

    @property
    def kind(self) -> str:
        return "raw" if self.raw else "dq" if self.dq_cols else "uniform"


def uniform_entry(layer: LayerInput, step: float, levels: np.ndarray) -> QuantizedTensor:
    """The codec entry of ``layer`` stored as ``levels`` on the grid ``step · Z``."""
    low = int(levels.min())
    dtype = np.float64 if layer.weight.dtype == torch.float64 else np.float32
    codebook = reconstruct(step, np.arange(low, int(levels.max()) + 1), dtype)
    return QuantizedTensor(name=layer.name, shape=tuple(layer.weight.shape),
                           dtype=DTYPE_NAMES[layer.weight.dtype], codebook=codebook,
                           indices=levels - low)


def dq_entry(layer: LayerInput, step: float, levels: np.ndarray, cols: int) -> DQTensor:
    """The codec entry of ``layer`` stored as dependent-quantization ``levels``."""
    return DQTensor(layer.name, tuple(layer.weight.shape), DTYPE_NAMES[layer.weight.dtype], step,
                    levels, cols)


def dq_cols(weight: torch.Tensor) -> int:
    """The trellis's row length: a row per output (Linear) or filter (conv), one row for a
    vector, so that the Viterbi runs on all rows at once."""
    return weight.numel() // weight.shape[0] if weight.dim() >= 2 else max(weight.numel(), 1)


def _entry(layer: LayerInput, candidate: Candidate) -> QuantizedTensor | DQTensor:
    assert candidate.levels is not None and candidate.step is not None
    levels = candidate.levels.astype(np.int64)
    if candidate.dq_cols:
        return dq_entry(layer, candidate.step, levels, candidate.dq_cols)
    return uniform_entry(layer, candidate.step, levels)


def layer_menu(layer: LayerInput, config: AllocateConfig, coder: str) -> list[Candidate]:
    """Every candidate of ``layer``: the grid steps × ECSQ factors, and the raw layer."""
    w = layer.weight.detach().to(torch.float64).reshape(-1).numpy()
    I = importance_floor(layer.I.reshape(-1).numpy(), config.importance_floor)
    H = None if layer.H is None else layer.H.reshape(-1).numpy()
    raw = RawTensor(layer.name, layer.weight.detach().cpu())
    menu = [Candidate(entry_bytes(raw, coder), 0.0)]
    rms = float(np.sqrt(np.mean(w * w))) if w.size else 0.0
    if rms == 0.0:
        return menu  # an all-zero layer: raw is exact, and a grid holds nothing less
    top = float(np.abs(w).max())
    gptq = _gptq_setup(layer, w, I, config.quantizer == "gptq") if config.uses_moments else None
    zero = gptq.zero if gptq is not None else float(
        (I * w * w).sum() + (0.0 if H is None else (H * w ** 4).sum()))
    seen: set[tuple[float, bytes]] = set()
    cols = dq_cols(layer.weight) if config.quantizer in DQ_QUANTIZERS else None
    for step in config.steps(rms):
        step = grid_step(step)
        if top / step >= 2 ** 15 - 1:
            continue  # finer than a 16-bit grid: raw is as good and cheaper
        limit = config.max_relative_distortion * zero
        if cols and gptq is not None:
            variants = _gptq_dq_variant(gptq, step, cols)
        elif cols:
            variants = _dq_variants(w, I, H, step, config, cols, limit)
        else:
            variants = _quantize(w, I, H, step, config, gptq)
        for lam, levels, distortion in variants:
            if distortion > limit:
                continue  # outside the trust region of the prediction
            if cols and int(levels.max()) - int(levels.min()) >= levels.size:
                continue  # a DQ alphabet wider than the tensor: the format refuses it
            key = (step, hashlib.blake2b(levels.tobytes(), digest_size=16).digest())
            if key in seen:
                continue  # the same levels reached by another factor
            seen.add(key)
            candidate = Candidate(0, distortion, step, lam, levels, cols)
            candidate.bytes = entry_bytes(_entry(layer, candidate), coder)
            menu.append(candidate)
    return menu


def _dq_variants(w: np.ndarray, I: np.ndarray, H: np.ndarray | None, step: float,
                 config: AllocateConfig, cols: int, limit: float):
    """(λ, (numel,) int32 levels, predicted distortion) of the trellis at λ = 0 and, for
    "dq-rdo", at each rd_factor (rate model: the order-0 code lengths per quantizer of the
    λ = 0 levels). The
    Viterbi minimises Σ I δ²; the quartic term, when given, is added to the prediction.
    Nothing when rounding to the grid ``step · Z`` (whose levels include every DQ value, so
    its distortion is a lower bound) is already beyond ``limit``."""
    if float((I * (w - reconstruct(step, np.rint(w / step))) ** 2).sum()) > limit:
        return
    mean_importance = float(I.mean())
    plain = dq_trellis(w, I, step, cols)
    factors = config.rd_factors if config.quantizer == "dq-rdo" else ()
    for factor in (0.0, *(c for c in factors if c > 0)):
        lam = factor * mean_importance * step * step
        result = plain if not lam else dq_trellis(w, I, step, cols, lam,
                                                  RateModel.from_levels(plain.levels, cols))
        distortion = result.distortion
        if H is not None:
            delta = w - dq_reconstruct(step, result.levels, cols).astype(np.float64)
            distortion += float((H * delta ** 4).sum())
        yield lam, result.levels.astype(np.int32), distortion


def importance_floor(I: np.ndarray, fraction: float) -> np.ndarray:
    """I with every value below ``fraction`` × mean(I) raised to it (a copy)."""
    mean = float(I.mean()) if I.size else 0.0
    return np.maximum(I, fraction * mean) if mean > 0 else I.copy()


@dataclass(frozen=True)
class _GPTQLayer:
    """What GPTQ needs of one layer at every step; none of it depends on the step."""

    W: torch.Tensor  # (out, d) float64 weights
    moment: torch.Tensor  # (d, d) input second moment
    factor: tuple  # gptq_factor(moment)
    rows: torch.Tensor  # (out,) row sensitivities g_r
    zero: float  # the predicted distortion of ŵ = 0


def _gptq_setup(layer: LayerInput, w: np.ndarray, I: np.ndarray,
                act_order: bool = True) -> _GPTQLayer | None:
    """GPTQ's per-layer state, or None for a layer without input moments (it is rounded).
    ``act_order=False`` for the trellis, which must visit the columns in the decoder's order."""
    moment = layer.statistics.get("input_moment")
    if moment is None:
        return None
    out = layer.weight.shape[0]
    W = torch.from_numpy(w.reshape(out, -1))
    rows = row_sensitivity(I.reshape(out, -1), moment)
    return _GPTQLayer(W, moment, gptq_factor(moment, act_order=act_order), rows,
                      output_error(W, moment, rows))


def _gptq_dq_variant(gptq: _GPTQLayer, step: float, cols: int):
    """(0, (numel,) int32 levels, predicted output error) of the trellis with GPTQ's error
    feedback (kernels.trellis.gptq_dq_levels) at λ = 0."""
    U, dead, _ = gptq.factor
    levels = gptq_dq_levels(gptq.W.numpy(), U.numpy(), dead.numpy(), step,
                            gptq.rows.numpy()).reshape(-1)
    w_hat = dq_reconstruct(step, levels, cols).astype(np.float64).reshape(gptq.W.shape)
    delta = gptq.W - torch.from_numpy(w_hat)
    yield 0.0, levels.astype(np.int32), output_error(delta, gptq.moment, gptq.rows)


def _quantize(w: np.ndarray, I: np.ndarray, H: np.ndarray | None, step: float,
              config: AllocateConfig, gptq: _GPTQLayer | None):
    """(λ, (numel,) int32 levels, predicted distortion) for each variant at this step."""
    if gptq is not None:
        levels = gptq_levels(gptq.W, gptq.moment, step, factor=gptq.factor)
        delta = gptq.W - torch.from_numpy(reconstruct(step, levels).astype(np.float64))
        yield 0.0, levels.reshape(-1).astype(np.int32), output_error(delta, gptq.moment,
                                                                     gptq.rows)
        return
    factors = config.rd_factors if config.quantizer == "ecsq" else (0.0,)
    mean_importance = float(I.mean()) + (0.0 if H is None else float(H.mean()) * step * step)
    for factor in factors:
        lam = factor * mean_importance * step * step
        result = ecsq_uniform(w, I, step, lam, H=H, max_iter=config.max_iter, tol=1e-4)
        yield lam, result.levels.astype(np.int32), result.distortion


def row_sensitivity(I: np.ndarray, moment: torch.Tensor) -> torch.Tensor:
    """g_r = Σ_j I_rj / tr(H): the output sensitivity of row r under I_rj ≈ g_r H_jj (K-FAC's
    factorization of the diagonal importance), so that Σ_r g_r δ_rᵀ H δ_r extends the diagonal
    objective Σ I δ² with the cross terms of correlated inputs."""
    trace = float(torch.diagonal(moment).sum())
    sums = torch.from_numpy(np.asarray(I, np.float64).sum(1))
    return sums / trace if trace > 0 else torch.zeros_like(sums)


def build_menus(layers: list[LayerInput], config: AllocateConfig,
                coder: str) -> list[list[Candidate]]:
    return [layer_menu(layer, config, coder)
            for layer in progress(layers, desc="menus", total=len(layers))]


def choose(menus: list[list[Candidate]], budget: float, config: AllocateConfig) -> Allocation:
    """One candidate per layer with Σ bytes <= ``budget`` and the least predicted distortion."""
    rates = [np.array([c.bytes for c in menu], dtype=np.float64) for menu in menus]
    dists = [np.array([c.distortion for c in menu], dtype=np.float64) for menu in menus]
    return allocate_to_budget(list(zip(rates, dists, strict=True)), budget,
                              method=config.search)


def layer_result(layer: LayerInput, candidate: Candidate) -> LayerResult:
    """The LayerResult of ``layer`` stored as ``candidate`` (ŵ exactly as the file decodes)."""
    if candidate.raw:
        weight = layer.weight.detach().clone()
        stats = layer_stats(layer, weight, weight.numel(), None, None)
        return LayerResult(RawTensor(layer.name, weight), weight, stats)
    entry, w_hat = _decoded(layer, candidate)
    assert candidate.levels is not None
    counts = np.bincount(candidate.levels - candidate.levels.min())
    counts = counts[counts > 0]
    bits = float(-(counts / counts.sum() * np.log2(counts / counts.sum())).sum())
    span = int(candidate.levels.max() - candidate.levels.min() + 1)
    stats = layer_stats(layer, w_hat, w_hat.numel(), span, bits)
    # LayerResult.entry's annotation (compress/_layers.py) predates DQTensor; the assembler
    # only appends the entry to the file's tensors, which encode_rdz accepts.
    return LayerResult(entry, w_hat, stats)


def weights_of(layers: list[LayerInput], menus: list[list[Candidate]],
               choice: np.ndarray) -> dict[str, torch.Tensor]:
    """{name: ŵ} for an allocation, without building codec entries (for closed-loop checks)."""
    out = {}
    for layer, menu, j in zip(layers, menus, choice, strict=True):
        candidate = menu[int(j)]
        out[layer.name] = layer.weight if candidate.raw else _decoded(layer, candidate)[1]
    return out


def _decoded(layer: LayerInput,
             candidate: Candidate) -> tuple[QuantizedTensor | DQTensor, torch.Tensor]:
    """The codec entry of ``candidate`` and ŵ exactly as the file decodes it (through the
    codec's own cast and gather, or its state machine)."""
    entry = _entry(layer, candidate)
    return entry, to_torch(decode_tensor(entry), entry.dtype).reshape(layer.weight.shape)


def allocation_rows(layers: list[LayerInput], menus: list[list[Candidate]],
                    allocation: Allocation, file_bytes: dict[str, int]) -> list[dict]:
    """Per layer: what was chosen, bits per weight, bytes, predicted distortion and its share."""
    total = float(allocation.distortion) or 1.0
    rows = []
    for layer, menu, j in zip(layers, menus, allocation.choice, strict=True):
        candidate = menu[int(j)]
        numel = layer.weight.numel()
        size = file_bytes.get(layer.name, candidate.bytes)
        rows.append({
            "layer": layer.name, "weights": numel,
            "choice": candidate.kind,
            "step": candidate.step, "levels": None if candidate.levels is None else int(
                candidate.levels.max() - candidate.levels.min() + 1),
            "ecsq_lambda": candidate.lam, "bytes": size, "bits_per_weight": 8 * size / numel,
            "predicted_distortion": candidate.distortion,
            "distortion_share": candidate.distortion / total,
            "slope": allocation.slope,
        })
    return rows
