"""The distance to the limit: real compressors of a Gaussian linear model against R̲(D).

A linear regression model f_w(x) = wᵀx has m = groups × group_size weights; the weights of group
g are i.i.d. N(0, v_g) and its inputs have variance λ_g (Σ_W, Σ_X diagonal, Σ_X non-trivial).
For this model d(w, ŵ) = Σ λ_i (w_i − ŵ_i)² exactly and I_w = Σ_X (paper §5.1), and Theorem 2
gives R̲(D), achievable (Theorem 3). Each compressor writes a real ``.rdz`` file; its rate is
the file size in bits per weight, its distortion is measured on the decoded file.

Compressors (each one point per setting):
* ``ecsq-waterfill``: uniform scalar quantization with step Δ_g² = 12 μ/λ_g (so the high-rate
  distortion Δ²/12 equals the water level D_g = μ/λ_g), cells reconstructed at their mean
  (golden rule 1), groups with μ ≥ λ_g v_g dropped (Ŵ = 0), indices entropy-coded per group.
  At high rate it sits ½ log₂(πe/6) ≈ 0.254 bit above R̲ on every coded weight.
* ``ecsq-same-step``: the same quantizer with one step for all groups (importance ignored).
* ``kmeans``: the library's optimal importance-weighted 1-D quantizer (I = λ) with one
  k-entry codebook for the whole model, indices entropy-coded.
* ``prune``: keep the weights with the largest λ_i w_i², store them exactly (float32) with an
  entropy-coded mask.

Rates reported per weight: ``file_bits`` (the whole file), ``entropy_bits`` (order-0 entropy
of the coded streams plus codebooks and raw values, no header), ``index_bits`` (entropy of the
index/position streams alone, the quantity the 0.254-bit figure refers to; for ``prune``,
which has no index stream, it equals ``entropy_bits``).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.theory.gaussian import ECSQ_HIGH_RATE_GAP_BITS
from rdcompress.theory.waterfilling import water_level_for_distortion, water_level_for_rate

COMPRESSORS = ("ecsq-waterfill", "ecsq-same-step", "kmeans", "prune")


@dataclass
class LimitConfig:
    """The model and the sweep; recorded with every result."""

    group_size: int = 65536                      # weights per group (i.i.d. within a group)
    variances: tuple[float, ...] = (1.0, 0.5, 0.3, 0.8, 0.1, 0.05, 0.6, 0.2)   # v_g = E W²
    lambdas: tuple[float, ...] = (0.1, 0.193, 0.373, 0.72, 1.39, 2.68, 5.18, 10.0)  # λ_g
    seed: int = 0                                # draws the weights
    coder: str = "ans"                           # .rdz index coder: "ans" | "huffman"
    num_mu: int = 14                             # water levels for the two ECSQ sweeps
    min_rate_bits: float = 0.05                  # ECSQ sweep spans R̲/weight in [min, max]
    max_rate_bits: float = 6.0
    ks: tuple[int, ...] = (2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)
    kept_fractions: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
    compressors: tuple[str, ...] = COMPRESSORS

    def __post_init__(self) -> None:
        if self.group_size < 16:
            raise ConfigError(f"group_size={self.group_size} must be >= 16")
        if len(self.variances) != len(self.lambdas) or not self.variances:
            raise ConfigError(f"variances ({len(self.variances)}) and lambdas "
                              f"({len(self.lambdas)}) need one entry per group")
        if min(self.variances) <= 0 or min(self.lambdas) <= 0:
            raise ConfigError("variances and lambdas must all be > 0")
        if not 0 < self.min_rate_bits < self.max_rate_bits:
            raise ConfigError(f"need 0 < min_rate_bits={self.min_rate_bits} < "
                              f"max_rate_bits={self.max_rate_bits}")
        unknown = set(self.compressors) - set(COMPRESSORS)
        if unknown:
            raise ConfigError(f"unknown compressors {sorted(unknown)}; choose from {COMPRESSORS}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LimitPoint:
    compressor: str
    setting: float            # μ, k or kept fraction
    distortion: float         # Σ λ_i (w_i − ŵ_i)², measured on the decoded file
    file_bits: float          # per weight
    entropy_bits: float       # per weight
    index_bits: float         # per weight
    bound_bits: float         # R̲(distortion) per weight
    extra: dict = field(default_factory=dict)

    @property
    def gap_file(self) -> float:
        return self.file_bits - self.bound_bits

    @property
    def gap_index(self) -> float:
        return self.index_bits - self.bound_bits

    def to_dict(self) -> dict:
        row = asdict(self)
        row.update(gap_file=self.gap_file, gap_index=self.gap_index)
        return row


class GroupedGaussianModel:
    """Weights, per-weight λ and v, and the exact bound of a ``LimitConfig``."""

    def __init__(self, config: LimitConfig) -> None:
        self.config = config
        n = config.group_size
        self.group_variances = np.asarray(config.variances, dtype=np.float64)  # (G,)
        self.group_lambdas = np.asarray(config.lambdas, dtype=np.float64)      # (G,)
        self.num_groups = self.group_variances.size
        rng = np.random.default_rng(config.seed)
        draws = rng.standard_normal((self.num_groups, n)) * np.sqrt(self.group_variances)[:, None]
        self.weights = draws.astype(np.float32)                                # (G, n)
        self.dim = self.num_groups * n
        # Theorem 2 on m = G·n coordinates, grouped: D(μ) = n Σ_g min(μ, b_g).
        self.breakpoints = self.group_lambdas * self.group_variances          # (G,)

    def bound_bits_per_weight(self, distortion: float) -> float:
        """R̲(D)/m in bits, exact (same pieces as waterfilling, with multiplicity n)."""
        per_group = distortion / self.config.group_size        # Σ_g min(μ, b_g) = D / n
        if per_group >= self.breakpoints.sum():
            return 0.0
        mu = water_level_for_distortion(self.breakpoints, per_group)
        levels = np.minimum(mu, self.breakpoints) / self.group_lambdas
        return float(0.5 * np.log2(self.group_variances / levels).sum() / self.num_groups)

    def mu_for_rate(self, rate_bits_per_weight: float) -> float:
        return water_level_for_rate(self.breakpoints, self.group_lambdas, self.group_variances,
                                    float(np.log(self.group_variances).sum()),
                                    rate_bits_per_weight * self.num_groups * math.log(2.0))


def run_limit_experiment(config: LimitConfig, work_dir: str | None = None) -> list[LimitPoint]:
    """Every compressor of ``config.compressors`` over its sweep; one ``.rdz`` file per point."""
    from rdcompress.progress import progress

    model = GroupedGaussianModel(config)
    jobs = []
    mus = [model.mu_for_rate(r) for r in np.geomspace(config.max_rate_bits,
                                                      config.min_rate_bits, config.num_mu)]
    for name in config.compressors:
        settings = {"ecsq-waterfill": mus, "ecsq-same-step": mus, "kmeans": config.ks,
                    "prune": config.kept_fractions}[name]
        jobs += [(name, float(s)) for s in settings]
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        return [measure(model, name, setting, os.path.join(tmp, "point.rdz"))
                for name, setting in progress(jobs, desc="distance to the limit")]


def measure(model: GroupedGaussianModel, compressor: str, setting: float, path: str) -> LimitPoint:
    """Compress with one setting, write the file, read it back, and measure rate and D."""
    from rdcompress.codec import read_rdz, write_rdz

    tensors = build_tensors(model, compressor, setting)
    summary = write_rdz(path, tensors, {"experiment": "theory-limit", "compressor": compressor,
                                        "setting": setting}, coder=model.config.coder)
    decoded = read_rdz(path).tensors
    n = model.config.group_size
    w_hat = np.concatenate([decoded[f"group{g}"].reshape(-1) if f"group{g}" in decoded
                            else decoded["all"].reshape(-1)[g * n:(g + 1) * n]
                            for g in range(model.num_groups)]).reshape(model.num_groups, n)
    err = model.weights.astype(np.float64) - w_hat.astype(np.float64)           # (G, n)
    distortion = float((model.group_lambdas[:, None] * err ** 2).sum())
    m = model.dim
    entropy_bits = sum(8.0 * t.entropy_bound_bytes for t in summary.tensors)
    index_bits = sum(t.index_entropy_bits + t.position_entropy_bits for t in summary.tensors)
    if compressor == "prune":   # the kept float32 values are not a coded stream: count them
        index_bits = entropy_bits
    return LimitPoint(compressor=compressor, setting=setting, distortion=distortion,
                      file_bits=8.0 * summary.file_bytes / m, entropy_bits=entropy_bits / m,
                      index_bits=index_bits / m,
                      bound_bits=model.bound_bits_per_weight(distortion),
                      extra={"file_bytes": summary.file_bytes,
                             "codebook_bytes": sum(t.codebook_bytes for t in summary.tensors)})


def build_tensors(model: GroupedGaussianModel, compressor: str, setting: float) -> list:
    from rdcompress.codec import PrunedTensor, QuantizedTensor

    n = model.config.group_size
    if compressor in ("ecsq-waterfill", "ecsq-same-step"):
        tensors = []
        for g in range(model.num_groups):
            if compressor == "ecsq-waterfill":
                if setting >= model.breakpoints[g]:        # full rectangle: Ŵ_g = 0
                    codebook, indices = np.zeros(1), np.zeros(n, dtype=np.int64)
                else:
                    step = math.sqrt(12.0 * setting / model.group_lambdas[g])
                    codebook, indices = uniform_quantize(model.weights[g], step)
            else:   # one step for all: D(Δ) = Σ λ_g Δ²/12 n matches the water-filling total
                step = math.sqrt(12.0 * setting * model.num_groups / model.group_lambdas.sum())
                codebook, indices = uniform_quantize(model.weights[g], step)
            tensors.append(QuantizedTensor(f"group{g}", (n,), "float32", codebook, indices))
        return tensors
    flat_w = model.weights.reshape(-1)                                          # (m,)
    flat_lam = np.repeat(model.group_lambdas, n)                                # (m,)
    if compressor == "kmeans":
        from rdcompress.quantize.optimal import optimal_quantize

        result = optimal_quantize(flat_w, flat_lam, int(setting))
        return [QuantizedTensor("all", (model.dim,), "float32", result.codebook,
                                result.assignments)]
    if compressor == "prune":
        kept = max(1, int(round(setting * model.dim)))
        score = flat_lam * flat_w.astype(np.float64) ** 2
        mask = np.zeros(model.dim, dtype=bool)
        mask[np.argsort(-score, kind="stable")[:kept]] = True
        return [PrunedTensor("all", (model.dim,), "float32", mask, flat_w[mask])]
    raise ConfigError(f"unknown compressor {compressor!r}; choose from {COMPRESSORS}")


def summarize_gaps(points: Sequence[LimitPoint]) -> dict:
    """Per compressor: smallest file/index gap, and the gap at the highest-rate point."""
    out = {}
    for name in sorted({p.compressor for p in points}):
        rows = [p for p in points if p.compressor == name]
        best = min(rows, key=lambda p: p.gap_file)
        top = max(rows, key=lambda p: p.bound_bits)
        out[name] = {"min_gap_file_bits": best.gap_file, "at_bound_bits": best.bound_bits,
                     "min_gap_index_bits": min(p.gap_index for p in rows),
                     "highest_rate_bound_bits": top.bound_bits,
                     "gap_file_at_highest_rate": top.gap_file,
                     "gap_index_at_highest_rate": top.gap_index,
                     "high_rate_theory_gap": ECSQ_HIGH_RATE_GAP_BITS}
    return out


# ---------------------------------------------------------------------------------------------
# Pure functions.


def uniform_quantize(values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform cells of width ``step`` centered on multiples of it, reconstructed at the mean.

    Returns (codebook (k,), indices (n,)) with k = number of occupied cells; the centroid
    reconstruction makes ŵ ⟂ w − ŵ within each cell (golden rule 1).
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    cells = np.round(values / step).astype(np.int64)                 # (n,)
    occupied, indices = np.unique(cells, return_inverse=True)
    sums = np.bincount(indices, weights=values, minlength=occupied.size)
    counts = np.bincount(indices, minlength=occupied.size)
    return sums / counts, indices.astype(np.int64)


def ecsq_entropy_gap_bits(variance: float, step: float, num_samples: int,
                          rng: np.random.Generator) -> tuple[float, float]:
    """Stand-in without files: (empirical index entropy, R(D) of the measured D), bits/sample.

    For one Gaussian source quantized uniformly with cell means; the difference tends to
    ½ log₂(πe/6) ≈ 0.254 as step → 0.
    """
    samples = rng.standard_normal(num_samples) * math.sqrt(variance)
    codebook, indices = uniform_quantize(samples, step)
    counts = np.bincount(indices).astype(np.float64)
    entropy = float(-(counts / num_samples * np.log2(counts / num_samples)).sum())
    distortion = float(((samples - codebook[indices]) ** 2).mean())
    return entropy, max(0.0, 0.5 * math.log2(variance / distortion))
