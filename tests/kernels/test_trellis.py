"""Dependent quantization: the Viterbi's cost is the minimum over every level sequence (brute
force on tiny rows), the fast candidates hold the optimum at λ = 0, and the state machine
decodes hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rdcompress.errors import ConfigError
from rdcompress.kernels.trellis import (
    RateModel,
    dq_multiples,
    dq_quantize,
    dq_reconstruct,
    dq_states,
    dq_trellis,
    gptq_dq_levels,
)
from rdcompress.kernels.uniform import ecsq_uniform


def brute_force(w, I, step, cols, lam, rate, low, high):
    """min over every sequence of levels in [low, high] of Σ I (w − ŵ)² + λ Σ bits."""
    n = len(w)
    sequences = np.array(list(itertools.product(range(low, high + 1), repeat=n)),
                         dtype=np.int64)  # (S, n)
    flat = sequences.reshape(-1)
    values = dq_reconstruct(step, flat, cols).astype(np.float64).reshape(sequences.shape)
    quantizer = (dq_states(flat, cols) >> 1).reshape(sequences.shape)
    bits = rate.of(quantizer, sequences)
    cost = (I * (w - values) ** 2).sum(1) + lam * bits.sum(1)
    return float(cost.min())


@pytest.mark.parametrize("seed, n, cols, lam", [
    (0, 6, 6, 0.0), (1, 6, 6, 0.5), (2, 6, 3, 0.2), (3, 5, 5, 2.0), (4, 6, 2, 1.0),
    (5, 4, 4, 0.05), (6, 6, 6, 5.0), (7, 6, 1, 0.3),
])
def test_viterbi_cost_is_the_brute_force_minimum(seed, n, cols, lam):
    rng = np.random.default_rng(seed)
    step = 0.25
    w = rng.normal(0, 0.6, n)
    I = rng.uniform(0.1, 2.0, n)
    low, high = -3, 3
    rate = RateModel(low, rng.uniform(0.5, 4.0, (2, high - low + 1)), 9.0)
    result = dq_trellis(w, I, step, cols, lam, rate, exhaustive=True)
    expected = brute_force(w, I, step, cols, lam, rate, low, high)
    assert result.cost == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # the returned levels achieve that cost
    values = dq_reconstruct(step, result.levels, cols).astype(np.float64)
    bits = rate.of(dq_states(result.levels, cols) >> 1, result.levels).sum()
    assert (I * (w - values) ** 2).sum() + lam * bits == pytest.approx(expected, rel=1e-12,
                                                                        abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_near_candidates_hold_the_optimum_without_rate(seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, 5)
    I = rng.uniform(0.1, 2.0, 5)
    step = 0.3
    fast = dq_trellis(w, I, step, 5)
    low, high = -8, 8
    every = dq_trellis(w, I, step, 5, 0.0, RateModel(low, np.zeros((2, high - low + 1)), 0.0),
                       exhaustive=True)
    assert fast.distortion == pytest.approx(every.distortion, rel=1e-12, abs=1e-15)
    assert fast.distortion == pytest.approx(brute_force(w, I, step, 5, 0.0, RateModel.flat(),
                                                        -5, 5), rel=1e-12, abs=1e-15)


def test_state_machine_decodes_hand_computed_values():
    # Q0 k=1 -> 2 (odd: state 2); Q1 k=1 -> 1 (odd: 3); Q1 k=2 -> 3 (even: 3); Q1 k=-1 -> -1
    levels = np.array([1, 1, 2, -1, 0, 0])
    assert dq_states(levels, 6).tolist() == [0, 2, 3, 3, 1, 2]
    assert dq_multiples(levels, 6).tolist() == [2, 1, 3, -1, 0, 0]
    # two rows of 3: the state restarts at 0 on the second row
    assert dq_multiples(levels, 3).tolist() == [2, 1, 3, -2, 0, 0]
    assert dq_reconstruct(0.5, levels, 6).tolist() == [1.0, 0.5, 1.5, -0.5, 0.0, 0.0]


def test_trellis_beats_one_quantizer_of_the_same_spacing():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1.0, 4096)
    I = np.ones_like(w)
    step = 0.2
    dq = dq_trellis(w, I, step, 256)
    uniform = ecsq_uniform(w, I, 2 * step, 0.0)
    # each of Q0, Q1 has spacing 2·step; the trellis moves on a denser lattice
    assert dq.distortion < 0.75 * uniform.distortion


def test_rate_passes_lower_the_entropy():
    rng = np.random.default_rng(1)
    w = rng.laplace(0, 1.0, 2048)
    I = np.ones_like(w)
    plain = dq_quantize(w, I, 0.5, 128)
    rated = dq_quantize(w, I, 0.5, 128, lam=2.0 * 0.25)
    model = RateModel.from_levels(plain.levels, 128)
    bits_plain = model.of(dq_states(plain.levels, 128) >> 1, plain.levels).sum()
    bits_rated = RateModel.from_levels(rated.levels, 128).of(
        dq_states(rated.levels, 128) >> 1, rated.levels).sum()
    assert bits_rated < bits_plain
    assert rated.distortion > plain.distortion


def test_bad_arguments_are_refused():
    with pytest.raises(ConfigError, match="divisor"):
        dq_trellis(np.zeros(6), np.ones(6), 0.1, 4)
    with pytest.raises(ConfigError, match="step"):
        dq_trellis(np.zeros(6), np.ones(6), 0.0, 6)
    with pytest.raises(ConfigError, match="importance"):
        dq_trellis(np.zeros(6), np.ones(5), 0.1, 6)


def correlated_problem(seed: int, out: int = 24, d: int = 40):
    rng = np.random.default_rng(seed)
    mix = np.eye(d) + 0.6 * rng.normal(size=(d, d)) / np.sqrt(d)
    X = rng.normal(size=(800, d)) @ mix
    return rng.normal(0, 1, (out, d)), X.T @ X / 800


def output_error_of(W, H, levels, step):
    delta = W - dq_reconstruct(step, levels.reshape(-1), W.shape[1]).astype(
        np.float64).reshape(W.shape)
    return float(np.einsum("od,de,oe->", delta, H, delta))


def test_gptq_trellis_with_a_diagonal_moment_is_the_plain_trellis():
    import torch

    from rdcompress.kernels.gptq import gptq_factor

    rng = np.random.default_rng(3)
    W = rng.normal(0, 1, (12, 20))
    H = np.diag(rng.uniform(0.5, 2.0, 20))
    U, dead, _ = gptq_factor(torch.from_numpy(H), act_order=False)
    levels = gptq_dq_levels(W, U.numpy(), dead.numpy(), 0.4)
    damped = np.diag(H) + 0.01 * np.diag(H).mean()  # gptq_factor's damping
    plain = dq_trellis(W.reshape(-1), np.broadcast_to(damped, W.shape).reshape(-1), 0.4, 20)
    assert np.array_equal(levels.reshape(-1), plain.levels)


def test_gptq_trellis_blocks_change_nothing_and_beat_the_plain_trellis():
    import torch

    from rdcompress.kernels.gptq import gptq_factor

    for seed in range(3):
        W, H = correlated_problem(seed)
        U, dead, _ = gptq_factor(torch.from_numpy(H), act_order=False)
        whole = gptq_dq_levels(W, U.numpy(), dead.numpy(), 0.5, block=1000)
        blocked = gptq_dq_levels(W, U.numpy(), dead.numpy(), 0.5, block=7)
        assert np.array_equal(whole, blocked)
        plain = dq_trellis(W.reshape(-1), np.ones(W.size), 0.5, W.shape[1]).levels
        assert output_error_of(W, H, whole, 0.5) < 0.9 * output_error_of(W, H, plain, 0.5)
