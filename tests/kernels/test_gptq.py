"""GPTQ rounding: the blocked Cholesky form against the plain OBS recursion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdcompress.errors import ConfigError
from rdcompress.kernels.gptq import gptq_levels, gptq_reference, output_error
from rdcompress.kernels.uniform import reconstruct


def _problem(seed, out=7, d=13, dead=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((200, d)) @ rng.standard_normal((d, d))  # correlated inputs
    X[:, :dead] = 0.0
    W = rng.standard_normal((out, d))
    return W, X.T @ X / len(X)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("block", [1, 4, 128])
@pytest.mark.parametrize("act_order", [False, True])
def test_blocked_cholesky_form_equals_the_obs_recursion(seed, block, act_order):
    W, H = _problem(seed, dead=seed % 3)
    step = [0.05, 0.3, 1.0, 2.0][seed % 4]
    got = gptq_levels(torch.from_numpy(W), torch.from_numpy(H), step, block=block,
                      act_order=act_order)
    np.testing.assert_array_equal(got, gptq_reference(W, H, step, act_order=act_order))


def test_compensation_lowers_the_output_error_of_rounding():
    wins = 0
    for seed in range(10):
        W, H = _problem(seed, out=32, d=24)
        step = 0.5
        rounded = np.round(W / step)
        compensated = gptq_levels(torch.from_numpy(W), torch.from_numpy(H), step)
        err = [output_error(torch.from_numpy(W - reconstruct(step, q).astype(np.float64)),
                            torch.from_numpy(H)) for q in (rounded, compensated)]
        wins += err[1] < err[0]
    assert wins >= 9


def test_dead_inputs_get_level_zero_and_bad_shapes_are_refused():
    W, H = _problem(0, dead=3)
    levels = gptq_levels(torch.from_numpy(W), torch.from_numpy(H), 0.1)
    assert (levels[:, :3] == 0).all()
    with pytest.raises(ConfigError, match="do not match"):
        gptq_levels(torch.ones(2, 3), torch.eye(4), 0.1)
    with pytest.raises(ConfigError, match="damp"):
        gptq_levels(torch.ones(2, 3), torch.eye(3), 0.1, damp=0.0)


def test_output_error_is_the_quadratic_form():
    rng = np.random.default_rng(1)
    delta, A = rng.standard_normal((3, 4)), rng.standard_normal((4, 4))
    H, g = A @ A.T, rng.random(3)
    want = sum(g[r] * delta[r] @ H @ delta[r] for r in range(3))
    got = output_error(torch.from_numpy(delta), torch.from_numpy(H), torch.from_numpy(g))
    assert got == pytest.approx(want, rel=1e-12)
