"""Distance to the limit: uniform ECSQ with water-filling steps vs R̲(D), on real .rdz files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rdcompress.errors import ConfigError
from rdcompress.theory.gaussian import ECSQ_HIGH_RATE_GAP_BITS
from rdcompress.theory.limit import (
    GroupedGaussianModel,
    LimitConfig,
    ecsq_entropy_gap_bits,
    run_limit_experiment,
    summarize_gaps,
    uniform_quantize,
)
from rdcompress.theory.waterfilling import LinearRegressionBound


def test_gish_pierce_constant():
    assert ECSQ_HIGH_RATE_GAP_BITS == pytest.approx(0.2546, abs=1e-4)


def test_uniform_quantize_cell_means_satisfy_golden_rule_1():
    values = np.random.default_rng(0).standard_normal(5000)
    codebook, indices = uniform_quantize(values, 0.7)
    recon = codebook[indices]
    for j in range(codebook.size):                # ŵ ⟂ (w − ŵ) inside every cell
        assert (values[indices == j] - recon[indices == j]).sum() == pytest.approx(0, abs=1e-9)
    assert np.all(np.abs(values - np.round(values / 0.7) * 0.7) <= 0.35 + 1e-12)


def test_high_rate_ecsq_gap_is_0254_bit_and_smaller_at_low_rate():
    rng = np.random.default_rng(1)
    entropy, bound = ecsq_entropy_gap_bits(2.0, 0.04 * math.sqrt(2.0), 400_000, rng)
    assert entropy - bound == pytest.approx(ECSQ_HIGH_RATE_GAP_BITS, abs=0.02)
    entropy, bound = ecsq_entropy_gap_bits(2.0, 4.0 * math.sqrt(2.0), 400_000, rng)
    assert 0 < entropy - bound < 0.15


def test_grouped_bound_equals_general_bound():
    config = LimitConfig(group_size=16, variances=(1.0, 0.2, 0.5), lambdas=(0.5, 4.0, 1.0))
    model = GroupedGaussianModel(config)
    general = LinearRegressionBound(np.repeat(config.variances, 16), np.repeat(config.lambdas, 16))
    for distortion in (0.5, 5.0, 20.0, 40.0):
        assert model.bound_bits_per_weight(distortion) == pytest.approx(
            general.rate(distortion) / general.dim, rel=1e-10, abs=1e-12)
    for rate in (0.1, 1.0, 3.0):
        mu = model.mu_for_rate(rate)
        assert general.levels_at_rate(rate * general.dim).mu == pytest.approx(mu, rel=1e-10)


def test_file_based_waterfilling_ecsq_tracks_the_bound(tmp_path):
    config = LimitConfig(group_size=8192, variances=(1.0, 0.3, 0.6), lambdas=(0.3, 3.0, 1.0),
                         compressors=("ecsq-waterfill", "prune"), num_mu=4,
                         min_rate_bits=0.2, max_rate_bits=5.0, kept_fractions=(0.05,))
    points = run_limit_experiment(config, work_dir=str(tmp_path))
    ecsq = sorted([p for p in points if p.compressor == "ecsq-waterfill"],
                  key=lambda p: p.bound_bits)
    assert len(ecsq) == 4
    model = GroupedGaussianModel(config)
    for point in ecsq:
        assert point.file_bits >= point.entropy_bits - 1e-3 >= point.index_bits - 2e-3
        assert point.gap_index > 0.0                       # no compressor beats R̲
        target = config.group_size * np.minimum(point.setting, model.breakpoints).sum()
        if point.bound_bits > 3:                           # high rate: D ≈ Σ λ_g Δ_g²/12
            assert point.distortion == pytest.approx(target, rel=0.05)
    assert ecsq[-1].gap_index == pytest.approx(ECSQ_HIGH_RATE_GAP_BITS, abs=0.04)
    assert ecsq[0].gap_index < ecsq[-1].gap_index           # the gap closes at low rate
    prune = [p for p in points if p.compressor == "prune"][0]
    assert prune.file_bits > 0.05 * 32                     # kept values are stored exactly
    summary = summarize_gaps(points)
    assert summary["ecsq-waterfill"]["min_gap_file_bits"] < summary["prune"]["min_gap_file_bits"]


def test_kmeans_point(tmp_path):
    pytest.importorskip("rdcompress.quantize.optimal")
    config = LimitConfig(group_size=2048, variances=(1.0, 0.2), lambdas=(0.5, 2.0),
                         compressors=("kmeans",), ks=(4,))
    (point,) = run_limit_experiment(config, work_dir=str(tmp_path))
    assert 1.0 < point.index_bits <= 2.0 and point.gap_file > 0


@pytest.mark.parametrize("kwargs, match", [
    ({"variances": (1.0,), "lambdas": (1.0, 2.0)}, "one entry per group"),
    ({"lambdas": (0.0,) * 8}, "> 0"),
    ({"compressors": ("zip",)}, "unknown compressors"),
    ({"min_rate_bits": 3.0, "max_rate_bits": 1.0}, "min_rate_bits"),
])
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        LimitConfig(**kwargs)
