"""Importance of a weight tied between an nn.Embedding(padding_idx) and a decoder (float64).

Definition (the one autograd's padding_idx implements, and every objective follows): inside the
embedding lookup the padding row is a constant; the decoder uses it like any other row. The
references below make that explicit (``hold_padding_fixed`` swaps the Embedding for plain
indexing with a detached padding row), so they depend neither on how PyTorch differentiates
padding_idx nor on the code under test. Forward-over-reverse AD of the original model does NOT
follow it (forward mode differentiates the padding lookup): the exact Hessian used to, and was
13.6% off on the padding row (T = 1).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call, hessian

from rdcompress.importance import compute_importance
from rdcompress.importance.curvature import piecewise_linear_reason
from rdcompress.importance.hessian import accumulate_hessian, hessian_diagonal_bruteforce

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helper module
from importance_problems import (  # noqa: E402
    PROBLEMS,
    assert_relative_close,
    brute_force,
    hold_padding_fixed,
    instantiate,
)

TEMPERATURE = 1.3
TIED = {p.name: p for p in PROBLEMS if p.name.startswith("tied-embedding")}
PIECEWISE_LINEAR = {"tied-embedding-decoder": False, "tied-embedding-used-pad": False,
                    "tied-embedding-parallel": True}  # which exact path each one takes


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def padding_fixed_diagonals(model, inputs, labels, temperature):
    """{name: (N, *shape)} diag of torch.func.hessian (forward over reverse) of each sample's
    loss, on a copy of the model whose padding lookups are explicitly detached."""
    fixed = hold_padding_fixed(copy.deepcopy(model))
    params = {n: p.detach() for n, p in fixed.named_parameters()}
    out = {}
    for name, value in params.items():
        rows = []
        for n in range(inputs.shape[0]):
            def loss(w, n=n, name=name):
                logits = functional_call(fixed, {**params, name: w}, (inputs[n:n + 1],))
                return F.cross_entropy(logits / temperature, labels[n:n + 1])
            rows.append(hessian(loss)(value).reshape(value.numel(), -1).diagonal())
        out[name] = torch.stack(rows).reshape(inputs.shape[0], *value.shape)
    return out


@pytest.fixture(scope="module")
def problems():
    cache = {}

    def get(name):
        if name not in cache:
            model, inputs, labels = instantiate(TIED[name])
            cache[name] = (model, inputs, labels,
                           padding_fixed_diagonals(model, inputs, labels, TEMPERATURE))
        return cache[name]
    return get


def _rel_err(got, expected):
    return float((got - expected).abs().max() / expected.abs().max())


def test_the_problems_exercise_the_padding_row():
    assert set(TIED) == set(PIECEWISE_LINEAR)
    for name, problem in TIED.items():
        model, inputs, _ = instantiate(problem)
        assert model.decoder.weight is model.embed.weight
        looks_up = (inputs == 0).any(1)  # (N,) samples holding a padding token
        assert 2 <= int(looks_up.sum()) < inputs.shape[0], name  # both kinds of sample
        padded = model.embed.weight[0].abs().max() > 0
        assert bool(padded) == (name != "tied-embedding-decoder"), name
        trainable = dict(model.named_parameters())
        linear = piecewise_linear_reason(model, inputs, trainable) is None
        assert linear == PIECEWISE_LINEAR[name], name


@pytest.mark.parametrize("name", sorted(TIED))
def test_double_backward_bruteforce_is_the_padding_fixed_hessian(name, problems):
    """Reverse over reverse on the original model = any AD mode on the explicit definition."""
    model, inputs, labels, reference = problems(name)
    brute = hessian_diagonal_bruteforce(model, inputs, labels, TEMPERATURE)
    assert float(reference["embed.weight"][:, 0].abs().max()) > 1e-3  # padding row is scored
    for param, diag in reference.items():
        assert _rel_err(brute[param], diag) < 1e-10, param


@pytest.mark.parametrize("name", sorted(TIED))
def test_exact_hessian_and_squares_match_the_reference(name, problems):
    """Failed before the fix (forward-over-reverse): wrong on the padding row."""
    model, inputs, labels, reference = problems(name)
    sums, squares = accumulate_hessian(model, inputs, labels, method="exact",
                                       temperature=TEMPERATURE, num_probes=1, generator=None,
                                       want_squares=True, chunk_size=4)
    for param, diag in reference.items():
        torch.testing.assert_close(sums[param], diag.sum(0), rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(squares[param], (diag * diag).sum(0), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["tied-embedding-used-pad", "tied-embedding-parallel"])
def test_hessian_objectives_through_compute_importance(name, problems):
    """Importance is stored as float32 (docs/importance-format.md): tolerance 1e-6."""
    model, inputs, labels, reference = problems(name)
    mu = 0.25
    got = compute_importance(model, [(inputs, labels)], "hessian", temperature=TEMPERATURE,
                             mu=mu, dtype="float64", chunk_size=4)
    assert_relative_close(got.quadratic, {n: d.mean(0) + mu for n, d in reference.items()},
                          tol=1e-6)
    both = compute_importance(model, [(inputs, labels)], "gradient+hessian",
                              temperature=TEMPERATURE, dtype="float64", chunk_size=4)
    fixed = hold_padding_fixed(copy.deepcopy(model))
    assert_relative_close(both.quadratic, brute_force(fixed, inputs, labels, "gradient",
                                                      TEMPERATURE), tol=1e-6)
    assert both.quartic is not None
    assert_relative_close(both.quartic, {n: (d * d).mean(0) for n, d in reference.items()},
                          tol=1e-6)


@pytest.mark.parametrize("objective", ["fisher", "gradient", "output"])
@pytest.mark.parametrize("name", sorted(TIED))
def test_first_order_objectives_follow_the_same_definition(name, objective):
    model, inputs, labels = instantiate(TIED[name])
    temperature = 1.0 if objective == "output" else TEMPERATURE
    reference = brute_force(hold_padding_fixed(copy.deepcopy(model)), inputs, labels, objective,
                            temperature)
    got = compute_importance(model, [(inputs, labels)], objective, temperature=temperature,
                             dtype="float64", chunk_size=4)
    assert_relative_close(got.quadratic, reference, tol=1e-6)


def _z_scores(samples, exact):
    """samples (R, ...) i.i.d. estimates: (mean − exact) / (std / √R), where std > 0."""
    mean, std = samples.mean(0), samples.std(0)
    varying = std > 1e-12 * exact.abs().max()
    torch.testing.assert_close(mean[~varying], exact[~varying], rtol=1e-9, atol=1e-12)
    return ((mean - exact) / (std / samples.shape[0] ** 0.5))[varying]


@pytest.mark.parametrize("method,name", [("hutchinson", "tied-embedding-used-pad"),
                                         ("curvature-propagation", "tied-embedding-parallel")])
def test_stochastic_estimators_are_unbiased_on_the_padding_row(method, name, problems):
    """R runs of 2 probes: the padding row's means sit within their standard errors (the old
    forward-over-reverse Hutchinson had |z| up to 9.7 there)."""
    model, inputs, labels, reference = problems(name)
    gen = torch.Generator().manual_seed(7)
    runs = [accumulate_hessian(model, inputs, labels, method=method, temperature=TEMPERATURE,
                               num_probes=2, generator=gen, want_squares=True)
            for _ in range(96)]
    for part, exact_of in ((0, lambda d: d.sum(0)), (1, lambda d: (d * d).sum(0))):
        z_all = []
        for param, diag in reference.items():
            samples = torch.stack([run[part][param] for run in runs])
            z = _z_scores(samples, exact_of(diag))
            z_all.append(z)
            if param == "embed.weight":
                z_pad = _z_scores(samples[:, 0], exact_of(diag)[0])
                assert z_pad.numel() >= 3 and float(z_pad.abs().max()) < 4.5, z_pad
        z_cat = torch.cat(z_all)
        assert 0.25 < float(z_cat.pow(2).mean().sqrt()) < 2.0, z_cat
        assert float(z_cat.abs().max()) < 5.0
