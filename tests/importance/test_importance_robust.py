"""Fisher-MC vs exact, determinism, NaN reporting, frozen/unused parameters, modes, errors."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from rdcompress.errors import ConfigError, NonFiniteError
from rdcompress.importance import ImportanceConfig, compute_importance
from rdcompress.importance.temperature import fit_temperature

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helper module
from importance_problems import (  # noqa: E402
    PROBLEMS,
    assert_relative_close,
    brute_force,
    instantiate,
)


def _mlp() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    return instantiate(PROBLEMS[0])


def test_fisher_mc_is_unbiased_for_exact_fisher():
    model, inputs, _ = _mlp()
    exact = compute_importance(model, [inputs], "fisher", dtype="float64")
    mc = compute_importance(model, [inputs], "fisher-mc", mc_samples=4000, dtype="float64")
    for name, value in exact.quadratic.items():
        # 4000 draws per sample: the relative standard error of each total is about 2%.
        ratio = float(mc.quadratic[name].sum() / value.sum())
        assert abs(ratio - 1) < 0.08, (name, ratio)
        corr = torch.corrcoef(torch.stack([mc.quadratic[name].flatten(),
                                           value.flatten()]))[0, 1]
        assert corr > 0.97, (name, float(corr))


def test_fisher_mc_is_deterministic_for_a_seed():
    model, inputs, _ = _mlp()
    first = compute_importance(model, [inputs], "fisher-mc", seed=3, dtype="float64")
    second = compute_importance(model, [inputs], "fisher-mc", seed=3, dtype="float64")
    other = compute_importance(model, [inputs], "fisher-mc", seed=4, dtype="float64")
    for name in first.quadratic:
        assert torch.equal(first.quadratic[name], second.quadratic[name])
    assert any(not torch.equal(first.quadratic[n], other.quadratic[n]) for n in first.quadratic)


def test_no_nan_from_vanishing_probabilities():
    model = nn.Linear(3, 4).double()
    with torch.no_grad():
        model.weight.mul_(1e4)  # softmax saturates: most probabilities underflow to exactly 0
    inputs = torch.randn(8, 3, dtype=torch.float64)
    for objective in ("fisher", "fisher-mc"):
        got = compute_importance(model, [inputs], objective, dtype="float64")
        assert all(torch.isfinite(v).all() for v in got.quadratic.values())


def test_nan_in_outputs_names_the_module():
    model = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4))
    with torch.no_grad():
        model[2].weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"module 2 \(Linear\)"):
        compute_importance(model, [torch.rand(4, 3) + 0.1], "fisher")


def test_nan_in_inputs_is_reported_as_data():
    model = nn.Linear(3, 4)
    inputs = torch.ones(2, 3)
    inputs[1, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="calibration inputs"):
        compute_importance(model, [inputs], "fisher")


def test_frozen_parameters_are_scored_and_restored_or_excluded():
    model, inputs, labels = _mlp()
    model[0].weight.requires_grad_(False)
    ref = brute_force(model, inputs, labels, "gradient")  # autograd skips the frozen weight
    got = compute_importance(model, [(inputs, labels)], "gradient", dtype="float64")
    assert not model[0].weight.requires_grad
    assert got.metadata["frozen"] == ["0.weight"]
    assert float(got.quadratic["0.weight"].abs().max()) > 0
    assert_relative_close({k: got.quadratic[k] for k in ref}, ref)
    excluded = compute_importance(model, [(inputs, labels)], "gradient", dtype="float64",
                                  include_frozen=False)
    assert "0.weight" not in excluded.quadratic
    assert_relative_close(excluded.quadratic, ref)


def test_unused_parameters_get_zero_and_are_reported():
    class WithUnused(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Linear(3, 4), nn.Linear(3, 4)

        def forward(self, x):
            return self.used(x)

    model = WithUnused()
    with pytest.warns(UserWarning, match="no gradient"):
        got = compute_importance(model, [torch.randn(5, 3)], "fisher")
    assert got.metadata["no_gradient"] == ["unused.bias", "unused.weight"]
    assert float(got.quadratic["unused.weight"].abs().max()) == 0


def test_eval_mode_is_used_and_training_mode_restored():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 3)).double()
    model.train()
    inputs = torch.randn(6, 4, dtype=torch.float64)
    first = compute_importance(model, [inputs], "fisher", dtype="float64")
    second = compute_importance(model, [inputs], "fisher", dtype="float64")
    assert model.training and model[1].training
    for name in first.quadratic:  # dropout off: identical
        assert torch.equal(first.quadratic[name], second.quadratic[name])


def test_max_samples_and_loader_batches():
    model, inputs, labels = _mlp()
    batches = [(inputs[:2], labels[:2]), (inputs[2:], labels[2:])]
    got = compute_importance(model, batches, "gradient", dtype="float64", max_samples=3)
    assert got.num_samples == 3
    ref = brute_force(model, inputs[:3], labels[:3], "gradient")
    assert_relative_close(got.quadratic, ref)


def test_batchnorm_without_running_stats_is_refused():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False),
                          nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="batch statistics"):
        compute_importance(model, [torch.randn(5, 3)], "fisher")


@pytest.mark.parametrize("kwargs, message", [
    ({"objective": "nope"}, "objective='nope' is unknown"),
    ({"temperature": 0.0}, "temperature=0.0"),
    ({"temperature": "hot"}, "'auto'"),
    ({"chunk_size": 0}, "chunk_size=0"),
    ({"mu": -1.0}, "mu=-1.0"),
    ({"dtype": "float16"}, "dtype='float16'"),
])
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ImportanceConfig(**kwargs)


def test_gradient_needs_labels_and_auto_temperature_needs_heldout():
    model = nn.Linear(3, 2)
    with pytest.raises(ConfigError, match="needs labels"):
        compute_importance(model, [torch.randn(4, 3)], "gradient")
    with pytest.raises(ConfigError, match="held-out"):
        compute_importance(model, [torch.randn(4, 3)], "fisher", temperature="auto")


def test_fit_temperature_recovers_the_generating_temperature():
    gen = torch.Generator().manual_seed(0)
    base = 3 * torch.randn(20000, 5, generator=gen)
    labels = torch.multinomial(torch.softmax(base, 1), 1, generator=gen).squeeze(1)
    fitted = fit_temperature(base * 2.5, labels)  # logits 2.5x too sharp -> T = 2.5
    assert math.isclose(fitted, 2.5, rel_tol=0.05)


def test_auto_temperature_is_recorded():
    torch.manual_seed(0)
    model = nn.Linear(3, 4)
    heldout = [(torch.randn(64, 3), torch.randint(0, 4, (64,)))]
    got = compute_importance(model, [torch.randn(8, 3)], "fisher", temperature="auto",
                             heldout=heldout)
    assert got.temperature is not None and got.temperature > 0
    assert got.metadata["config"]["temperature"] == "auto"


def test_hessian_objectives_are_wired_or_clearly_unavailable():
    model, inputs, labels = _mlp()
    try:
        import rdcompress.importance.hessian  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="not available"):
            compute_importance(model, [(inputs, labels)], "hessian")
        return
    hess = compute_importance(model, [(inputs, labels)], "hessian", mu=0.5, dtype="float64")
    both = compute_importance(model, [(inputs, labels)], "gradient+hessian", dtype="float64")
    grad = compute_importance(model, [(inputs, labels)], "gradient", dtype="float64")
    assert set(hess.quadratic) == set(grad.quadratic) and hess.metadata["mu"] == 0.5
    assert both.quartic is not None and set(both.quartic) == set(grad.quadratic)
    assert_relative_close(both.quadratic, {k: v.double() for k, v in grad.quadratic.items()})


@pytest.mark.parametrize("objective, method, expected", [
    ("gradient+hessian", "curvature-propagation", 2),
    ("gradient+hessian", "hutchinson", 2),
    ("gradient+hessian", "exact", 1),
    ("hessian", "hutchinson", 1),
    ("fisher", "exact", 1),
])
def test_num_probes_default_depends_on_objective_and_estimator(objective, method, expected):
    config = ImportanceConfig(objective=objective, hessian_method=method)
    assert config.num_probes == expected
    assert config.to_dict()["num_probes"] == expected  # the header records what ran


def test_gradient_hessian_with_a_stochastic_estimator_runs_with_defaults():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4)).double()
    inputs, labels = torch.randn(8, 5, dtype=torch.float64), torch.randint(0, 4, (8,))
    for method in ("curvature-propagation", "hutchinson"):
        got = compute_importance(model, [(inputs, labels)], "gradient+hessian", dtype="float64",
                                 hessian_method=method)
        assert got.quartic is not None and set(got.quartic) == set(got.quadratic)
        assert got.metadata["config"]["num_probes"] == 2
        assert all(torch.isfinite(v).all() for v in got.quartic.values())


def test_one_probe_for_stochastic_squares_is_refused_clearly():
    with pytest.raises(ConfigError, match=r"num_probes=1 with objective 'gradient\+hessian'"):
        ImportanceConfig(objective="gradient+hessian", hessian_method="hutchinson", num_probes=1)
    with pytest.raises(ConfigError, match="num_probes=0"):
        ImportanceConfig(objective="hessian", hessian_method="hutchinson", num_probes=0)


def test_module_shared_with_a_torch_func_module_is_refused():
    class Outer(nn.Module):  # no rule and a direct parameter: torch.func over its subtree
        def __init__(self, inner: nn.Linear) -> None:
            super().__init__()
            self.inner, self.gain = inner, nn.Parameter(torch.ones(3))

        def forward(self, x):
            return self.inner(x) * self.gain

    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, Outer(shared))
    with pytest.raises(ConfigError, match="also used inside module '1'"):
        compute_importance(model, [torch.randn(4, 3)], "fisher")
