"""Every first-order objective equals a brute-force per-sample autograd loop (1e-5 relative)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from rdcompress.importance import compute_importance

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helper module
from importance_problems import (  # noqa: E402
    PROBLEMS,
    assert_relative_close,
    brute_force,
    instantiate,
)


@pytest.mark.parametrize("objective", ["fisher", "gradient", "output"])
@pytest.mark.parametrize("problem", PROBLEMS, ids=[p.name for p in PROBLEMS])
def test_matches_brute_force(problem, objective):
    model, inputs, labels = instantiate(problem)
    temperature = 1.0 if objective == "output" else 1.7
    ref = brute_force(model, inputs, labels, objective, temperature)
    got = compute_importance(model, [(inputs, labels)], objective, temperature=temperature,
                             dtype="float64", chunk_size=4)  # 2 chunks: chunking is exact
    assert got.num_samples == inputs.shape[0]
    assert_relative_close(got.quadratic, ref)


def test_float32_default_matches_float64_reference():
    model, inputs, labels = instantiate(PROBLEMS[1])
    ref = brute_force(model, inputs, labels, "fisher")
    got = compute_importance(model.float(), [(inputs.float(), labels)], "fisher")
    assert all(v.dtype == torch.float32 for v in got.quadratic.values())
    assert_relative_close(got.quadratic, ref, tol=1e-4)


def test_dtype_float64_copies_a_float32_model_without_changing_it():
    model, inputs, labels = instantiate(PROBLEMS[0])
    model = model.float()
    got = compute_importance(model, [(inputs.float(), labels)], "gradient", dtype="float64")
    assert next(model.parameters()).dtype == torch.float32
    ref = brute_force(model.double(), inputs.float().double(), labels, "gradient")
    assert_relative_close(got.quadratic, ref, tol=1e-6)


def test_fisher_scales_with_temperature_on_a_linear_model():
    # For z = W x at T -> infinity, p -> uniform: fisher -> (1/T^2) * E[x^2] * (1/C)(1 - 1/C).
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 5, bias=False).double()
    inputs = torch.randn(50, 3, dtype=torch.float64)
    temperature = 1e4
    got = compute_importance(model, [inputs], "fisher", temperature=temperature, dtype="float64")
    expected = (inputs ** 2).mean(0) * (1 / 5) * (1 - 1 / 5) / temperature ** 2
    torch.testing.assert_close(got.quadratic["weight"].double(), expected.expand(5, 3),
                               rtol=1e-3, atol=0)
