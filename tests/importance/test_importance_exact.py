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


@pytest.mark.parametrize("name", ["conv-stride-dilation-groups", "self-attention",
                                  "tied-convs-shared-module", "tied-embedding-decoder"])
def test_chunking_over_samples_is_exact(monkeypatch, name):
    """MAX_ELEMENTS small: per-sample gradients formed a sample or two at a time."""
    from rdcompress.importance import rules

    monkeypatch.setattr(rules, "MAX_ELEMENTS", 100)
    problem = next(p for p in PROBLEMS if p.name == name)
    model, inputs, labels = instantiate(problem)
    ref = brute_force(model, inputs, labels, "fisher", 1.3)
    got = compute_importance(model, [(inputs, labels)], "fisher", temperature=1.3,
                             dtype="float64")
    assert_relative_close(got.quadratic, ref)


def test_grouped_conv_per_sample_gradients_match_autograd():
    """conv_weight_per_sample against one autograd call per sample (Conv1d and Conv2d)."""
    from rdcompress.importance.per_sample import conv_per_sample

    gen = torch.Generator().manual_seed(0)
    for conv, shape in [(torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0),
                                         dilation=(1, 2), groups=2), (3, 4, 7, 6)),
                        (torch.nn.Conv1d(3, 2, 3, padding="same", padding_mode="circular"),
                         (3, 3, 8))]:
        conv = conv.double()
        x = torch.randn(shape, generator=gen, dtype=torch.float64)
        g = torch.randn(conv(x).shape, generator=gen, dtype=torch.float64)
        got = conv_per_sample(conv, [(x, g)])
        for n in range(shape[0]):
            expected = torch.autograd.grad(conv(x[n:n + 1]), [conv.weight, conv.bias],
                                           g[n:n + 1])
            torch.testing.assert_close(got["weight"][n], expected[0], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(got["bias"][n], expected[1], rtol=1e-10, atol=1e-12)
