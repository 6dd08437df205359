"""Diagonal Hessian estimators against a brute-force double-backward loop (float64, tiny models)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rdcompress.errors import ConfigError, ModelError
from rdcompress.importance.curvature import (
    _numerical_reason,
    func_per_sample_grads,
    logit_hessian_factor,
    piecewise_linear_reason,
)
from rdcompress.importance.hessian import (
    accumulate_hessian,
    add_hessian_regularizer,
    hessian_diagonal_bruteforce,
)

DTYPE = torch.float64
TEMPERATURE = 1.7


# ---------------------------------------------------------------- tiny problems (declarative)

class FunctionalTanh(nn.Module):
    """Only Linear modules, so the module table sees nothing nonlinear; tanh is functional."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(3, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))


class SharedParallel(nn.Module):
    """One Linear applied on two parallel ReLU branches: logits still linear in its weight."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Linear(4, 5), nn.Linear(4, 5), nn.Linear(5, 3)

    def forward(self, x):
        return self.head(F.relu(self.a(x))) + self.head(F.relu(self.b(x)))


class FunctionalReuse(nn.Module):
    """fc2's weight is also used by F.linear outside the module: the hooks cannot see that use,
    the batch-gradient check notices, and the torch.func engine takes over."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 5), nn.Linear(5, 3)

    def forward(self, x):
        hidden = F.relu(self.fc1(x))
        return self.fc2(hidden) + F.linear(hidden.flip(1), self.fc2.weight)


class SharedNested(nn.Module):
    """The same Linear twice in sequence: logits quadratic in its weight (not piecewise linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(3, 3)

    def forward(self, x):
        return self.inner(F.relu(self.inner(x)))


class TiedParallel(nn.Module):
    """One weight tensor held by two Linear modules on parallel ReLU branches (tied weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Linear(4, 5), nn.Linear(4, 5), nn.Linear(5, 3)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.head(F.relu(self.a(x)) + F.relu(self.b(-x)))


class TiedSequence(nn.Module):
    """Tied weight used twice in sequence: quadratic in it (exact path via torch.func)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Linear(3, 3), nn.Linear(3, 3), nn.Linear(3, 3)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.head(F.relu(self.b(F.relu(self.a(x)))))


class Residual(nn.Module):
    """Conv-BN-ReLU(inplace) residual block with `out += identity`, as in ResNets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(2 * 2 * 2, 3)

    def forward(self, x):
        out = self.bn(self.conv(x))
        out += x
        return self.head(self.pool(F.relu(out, inplace=True)).flatten(1))


class PadShortcut(nn.Module):
    """A custom parameter-free module (not in any table), like a CIFAR ResNet's option-A
    shortcut: subsample and zero-pad the channels. Piecewise linear: the numerical check says so."""

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 1, 1))


class FunctionalSiLU(nn.Module):
    """F.silu in forward: its derivative has no forward-mode rule (issue 18: the numerical
    piecewise-linearity check crashed with NotImplementedError)."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(3, 4), nn.Linear(4, 3)

    def forward(self, x):
        return self.second(F.silu(self.first(x)))


def _randomize_batchnorms(model: nn.Module, gen: torch.Generator) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.weight.shape, generator=gen))
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=gen))


def _conv_net():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
        nn.MaxPool2d(2), nn.Conv2d(4, 2, 3, padding="same", padding_mode="reflect", groups=2),
        nn.ReLU(), nn.Flatten(), nn.Linear(2 * 2 * 2, 3))


def _conv1d_net():
    return nn.Sequential(nn.Conv1d(2, 3, 3, stride=2, padding=1), nn.BatchNorm1d(3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(3 * 4, 3))


# name -> (model factory, input shape of one sample, piecewise linear?)
PROBLEMS = {
    "relu-mlp": (lambda: nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4),
                                       nn.ReLU(inplace=True), nn.Linear(4, 3)), (5,), True),
    "conv-bn-maxpool": (_conv_net, (2, 8, 8), True),
    "conv1d-bn": (_conv1d_net, (2, 8), True),
    "residual-inplace": (Residual, (2, 4, 4), True),
    "custom-shortcut": (lambda: nn.Sequential(nn.Conv2d(2, 2, 3, padding=1), PadShortcut(),
                                              nn.ReLU(), nn.Flatten(), nn.Linear(4 * 2 * 2, 3)),
                        (2, 4, 4), True),
    "prelu-mlp": (lambda: nn.Sequential(nn.Linear(4, 5), nn.PReLU(5), nn.Linear(5, 3)), (4,), True),
    "shared-parallel": (SharedParallel, (4,), True),
    "functional-reuse": (FunctionalReuse, (4,), True),
    "logsoftmax-output": (lambda: nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3),
                                                nn.LogSoftmax(dim=1)), (4,), True),
    "tanh-mlp": (lambda: nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3)), (3,), False),
    "functional-tanh": (FunctionalTanh, (3,), False),
    "logsoftmax-hidden": (lambda: nn.Sequential(nn.Linear(4, 5), nn.LogSoftmax(dim=1),
                                                nn.Linear(5, 3)), (4,), False),
    "shared-nested": (SharedNested, (3,), False),
    "tied-parallel": (TiedParallel, (4,), True),
    "tied-sequence": (TiedSequence, (3,), False),
    # Issue 18: crashed before (NotImplementedError; a shape error under vmap for PReLU).
    "functional-silu": (FunctionalSiLU, (3,), False),
    "prelu-tanh": (lambda: nn.Sequential(nn.Linear(4, 5), nn.PReLU(), nn.Linear(5, 5), nn.Tanh(),
                                         nn.Linear(5, 3)), (4,), False),
}


def make_problem(name: str, num_samples: int = 5, seed: int = 0):
    factory, sample_shape, _ = PROBLEMS[name]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = factory().to(DTYPE)
    with torch.no_grad():
        _randomize_batchnorms(model, gen)
    model.eval()
    inputs = torch.randn((num_samples, *sample_shape), generator=gen, dtype=DTYPE)
    targets = torch.randint(0, 3, (num_samples,), generator=gen)
    return model, inputs, targets


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one thread avoids contention on a shared CI machine (~5x faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


# ---------------------------------------------------------------- exact == brute force

@pytest.fixture(scope="module")
def references():
    cache = {}

    def get(name: str):
        if name not in cache:
            model, inputs, targets = make_problem(name)
            cache[name] = (model, inputs, targets,
                           hessian_diagonal_bruteforce(model, inputs, targets, TEMPERATURE))
        return cache[name]
    return get


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_exact_equals_bruteforce(name, references):
    model, inputs, targets, per_sample = references(name)
    sums, squares = accumulate_hessian(model, inputs, targets, method="exact",
                                       temperature=TEMPERATURE, num_probes=1, generator=None,
                                       want_squares=True)
    assert list(sums) == [n for n, _ in model.named_parameters()]
    assert not any(s.requires_grad for s in [*sums.values(), *squares.values()])
    for param, diag in per_sample.items():
        assert diag.abs().max() > 0 or param.endswith("bias"), param  # a non-trivial reference
        assert _rel_err(sums[param], diag.sum(0)) < 1e-6, param
        assert _rel_err(squares[param], (diag * diag).sum(0)) < 1e-6, param


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_piecewise_linear_detection(name):
    model, inputs, _ = make_problem(name)
    trainable = dict(model.named_parameters())
    assert (piecewise_linear_reason(model, inputs[:2], trainable) is None) == PROBLEMS[name][2]


def test_nonlinear_module_table_names_the_module():
    model, inputs, _ = make_problem("tanh-mlp")
    reason = piecewise_linear_reason(model, inputs[:2], dict(model.named_parameters()))
    assert "'1' of type Tanh" in reason


def test_piecewise_linear_detection_float32():
    model, inputs, _ = make_problem("conv-bn-maxpool")
    model, inputs = model.float(), inputs.float()
    assert piecewise_linear_reason(model, inputs[:2], dict(model.named_parameters())) is None


def test_gauss_newton_differs_from_hessian_for_tanh(references):
    """The GGN Σ_c (J_nᵀ s_c)² is exact for ReLU nets but misses the residual term for tanh."""
    for name, equal in (("relu-mlp", True), ("tanh-mlp", False)):
        model, inputs, _, per_sample = references(name)
        trainable = dict(model.named_parameters())
        factor = logit_hessian_factor(model(inputs).detach(), TEMPERATURE)  # (N, C, C)
        ggn = {n: 0.0 for n in trainable}
        for c in range(factor.shape[2]):
            grads = func_per_sample_grads(model, trainable, inputs, factor[:, :, c])
            ggn = {n: ggn[n] + grads[n] ** 2 for n in trainable}
        errors = [_rel_err(ggn[n], per_sample[n]) for n in trainable]
        assert (max(errors) < 1e-9) == equal, errors


def test_float32_model_matches_float64_reference(references):
    model, inputs, targets, per_sample = references("conv-bn-maxpool")
    sums, squares = accumulate_hessian(copy.deepcopy(model).float(), inputs.float(), targets,
                                       method="exact", temperature=TEMPERATURE, num_probes=1,
                                       generator=None, want_squares=True)
    for name, diag in per_sample.items():
        assert sums[name].dtype == torch.float32
        assert _rel_err(sums[name].double(), diag.sum(0)) < 1e-4, name
        assert _rel_err(squares[name].double(), (diag * diag).sum(0)) < 1e-4, name


def test_chunking_does_not_change_results():
    model, inputs, targets = make_problem("conv-bn-maxpool", num_samples=7)
    for method in ("exact", "curvature-propagation"):
        runs = [accumulate_hessian(model, inputs, targets, method=method, temperature=1.0,
                                   num_probes=3, generator=torch.Generator().manual_seed(1),
                                   want_squares=True, chunk_size=chunk) for chunk in (None, 3)]
        for param in runs[0][0]:
            assert _rel_err(runs[1][0][param], runs[0][0][param]) < 1e-12
            assert _rel_err(runs[1][1][param], runs[0][1][param]) < 1e-12


def test_train_mode_is_restored_and_ignored(references):
    model, inputs, targets, per_sample = references("conv-bn-maxpool")
    model.train()
    stats = model[1].running_mean.clone()
    try:
        sums, _ = accumulate_hessian(model, inputs, targets, method="exact",
                                     temperature=TEMPERATURE, num_probes=1, generator=None,
                                     want_squares=False)
        assert model.training and model[1].training
        assert torch.equal(model[1].running_mean, stats)
    finally:
        model.eval()
    assert _rel_err(sums["0.weight"], per_sample["0.weight"].sum(0)) < 1e-6


def test_works_under_no_grad_and_with_frozen_parameters():
    model, inputs, targets = make_problem("relu-mlp")
    reference = hessian_diagonal_bruteforce(model, inputs, targets, 1.0)
    model[0].weight.requires_grad_(False)
    with torch.no_grad():
        sums, _ = accumulate_hessian(model, inputs, targets, method="exact", temperature=1.0,
                                     num_probes=1, generator=None, want_squares=False)
    assert "0.weight" not in sums
    for name in sums:
        assert _rel_err(sums[name], reference[name].sum(0)) < 1e-6


# ---------------------------------------------------------------- stochastic: unbiased, 1/√K

def _z_scores(samples: torch.Tensor, exact: torch.Tensor):
    """samples (R, ...) i.i.d. estimates; z = (mean − exact) / (std / √R) where std > 0."""
    mean, std = samples.mean(0), samples.std(0)
    varying = std > 1e-12 * exact.abs().max().clamp_min(1e-300)
    assert torch.allclose(mean[~varying], exact[~varying], rtol=1e-9, atol=1e-12)
    return ((mean - exact) / (std / samples.shape[0] ** 0.5))[varying]


def _repeated(model, inputs, targets, method, repeats, num_probes, want_squares):
    gen = torch.Generator().manual_seed(1234)
    runs = [accumulate_hessian(model, inputs, targets, method=method, temperature=TEMPERATURE,
                               num_probes=num_probes, generator=gen, want_squares=want_squares)
            for _ in range(repeats)]
    sums = {n: torch.stack([r[0][n] for r in runs]) for n in runs[0][0]}
    squares = {n: torch.stack([r[1][n] for r in runs]) for n in runs[0][0]} if want_squares \
        else None
    return sums, squares


@pytest.mark.parametrize("method,name,repeats", [
    ("curvature-propagation", "relu-mlp", 160),
    ("curvature-propagation", "conv-bn-maxpool", 128),
    ("hutchinson", "relu-mlp", 128),
    ("hutchinson", "tanh-mlp", 128),
    ("hutchinson", "conv-bn-maxpool", 96),
])
def test_stochastic_estimators_are_unbiased(method, name, repeats, references):
    """Means of R independent runs (2 probes each) match exact within their standard error, and
    the error falls like 1/√R: errors normalized by std/√R have RMS ≈ 1 both at R/8 and at R."""
    model, inputs, targets, per_sample = references(name)
    sums, squares = _repeated(model, inputs, targets, method, repeats, 2, True)
    for stat, exact_of in ((sums, lambda d: d.sum(0)), (squares, lambda d: (d * d).sum(0))):
        z_all, z_few = [], []
        for param, samples in stat.items():
            exact = exact_of(per_sample[param])
            z_all.append(_z_scores(samples, exact))
            z_few.append(_z_scores(samples[:repeats // 8], exact))
        z_all, z_few = torch.cat(z_all).detach(), torch.cat(z_few).detach()
        assert z_all.numel() > 5
        # Entries share probes, so their z are correlated: loose bounds on the RMS. A biased
        # square (square of the probe mean) gives RMS 7-18 here.
        assert 0.25 < float(z_all.pow(2).mean().sqrt()) < 2.0, z_all
        assert 0.25 < float(z_few.pow(2).mean().sqrt()) < 2.5, z_few
        assert float(z_all.abs().max()) < 5.0


@pytest.mark.parametrize("name", ["residual-inplace", "logsoftmax-output"])
def test_curvature_propagation_single_probe_mean_is_unbiased(name, references):
    """num_probes=1 without squares is allowed; many of them average to the exact diagonal."""
    model, inputs, targets, per_sample = references(name)
    sums, _ = _repeated(model, inputs, targets, "curvature-propagation", 128, 1, False)
    z = torch.cat([_z_scores(sums[n], per_sample[n].sum(0)) for n in sums]).detach()
    assert 0.25 < float(z.pow(2).mean().sqrt()) < 2.0 and float(z.abs().max()) < 5.0


def test_more_probes_in_one_call_reduce_the_error(references):
    model, inputs, targets, per_sample = references("relu-mlp")
    errors = []
    for probes in (4, 256):
        sums, _ = accumulate_hessian(model, inputs, targets, method="curvature-propagation",
                                     temperature=TEMPERATURE, num_probes=probes,
                                     generator=torch.Generator().manual_seed(5),
                                     want_squares=False)
        errors.append(sum(float((sums[n] - per_sample[n].sum(0)).pow(2).sum()) for n in sums))
    assert (errors[0] / errors[1]) ** 0.5 > 3.0  # about 8 = √64


def test_same_seed_same_result_other_seed_other_result():
    model, inputs, targets = make_problem("relu-mlp")
    for method in ("hutchinson", "curvature-propagation"):
        results = [accumulate_hessian(model, inputs, targets, method=method, temperature=1.0,
                                      num_probes=2, generator=torch.Generator().manual_seed(s),
                                      want_squares=True)[0]["2.weight"] for s in (3, 3, 4)]
        assert torch.equal(results[0], results[1])
        assert not torch.equal(results[0], results[2])
        # Sums alone are reduced on the fly; same probes, same sums.
        alone = accumulate_hessian(model, inputs, targets, method=method, temperature=1.0,
                                   num_probes=2, generator=torch.Generator().manual_seed(3),
                                   want_squares=False)[0]["2.weight"]
        assert _rel_err(alone, results[0]) < 1e-12


# ---------------------------------------------------------------- errors and helpers

def test_curvature_propagation_refuses_non_piecewise_linear_models():
    model, inputs, targets = make_problem("functional-tanh")
    with pytest.raises(ModelError, match="hutchinson"):
        accumulate_hessian(model, inputs, targets, method="curvature-propagation",
                           temperature=1.0, num_probes=2, generator=None, want_squares=False)


@pytest.mark.parametrize("kwargs,match", [
    ({"method": "lanczos"}, "method='lanczos' is unknown"),
    ({"temperature": 0.0}, "temperature=0.0"),
    ({"num_probes": 0}, "num_probes=0"),
    ({"method": "hutchinson", "want_squares": True}, "two independent probes"),
    ({"chunk_size": 0}, "chunk_size=0"),
])
def test_bad_settings(kwargs, match):
    model, inputs, targets = make_problem("relu-mlp")
    settings = {"method": "exact", "temperature": 1.0, "num_probes": 1, "generator": None,
                "want_squares": False, **kwargs}
    with pytest.raises(ConfigError, match=match):
        accumulate_hessian(model, inputs, targets, **settings)


def test_bad_batches_and_models():
    model, inputs, targets = make_problem("relu-mlp")
    settings = {"method": "exact", "temperature": 1.0, "num_probes": 1, "generator": None,
                "want_squares": False}
    with pytest.raises(ConfigError, match="targets must be integer labels"):
        accumulate_hessian(model, inputs, targets[:2], **settings)
    with pytest.raises(ConfigError, match=r"targets must lie in \[0, 3\)"):
        accumulate_hessian(model, inputs, targets + 3, **settings)
    with pytest.raises(ModelError, match="logits of shape"):
        accumulate_hessian(nn.Sequential(model, nn.Unflatten(1, (1, 3))), inputs, targets,
                           **settings)
    batch_stats = nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3, track_running_stats=False))
    with pytest.raises(ModelError, match="batch statistics"):
        accumulate_hessian(batch_stats.to(DTYPE), inputs, targets, **settings)


def test_empty_batch_gives_zeros():
    model, inputs, targets = make_problem("relu-mlp")
    sums, squares = accumulate_hessian(model, inputs[:0], targets[:0], method="exact",
                                       temperature=1.0, num_probes=1, generator=None,
                                       want_squares=True)
    assert all(float(s.abs().sum()) == 0 for s in [*sums.values(), *squares.values()])


def test_add_hessian_regularizer():
    hessian = {"w": torch.tensor([0.0, 2.0, -1.0])}
    assert torch.equal(add_hessian_regularizer(hessian, 0.5)["w"], torch.tensor([0.5, 2.5, -0.5]))
    assert torch.equal(hessian["w"], torch.tensor([0.0, 2.0, -1.0]))  # not modified in place
    for mu in (-1.0, float("nan")):
        with pytest.raises(ConfigError, match="mu="):
            add_hessian_regularizer(hessian, mu)


def test_logit_hessian_factor_closed_form():
    logits = torch.tensor([[0.3, -1.2, 2.0], [0.0, 0.0, 0.0]], dtype=DTYPE)
    factor = logit_hessian_factor(logits, 2.0)
    for n in range(2):
        z = logits[n].clone().requires_grad_(True)
        hessian = torch.autograd.functional.hessian(
            lambda v: F.cross_entropy(v.unsqueeze(0) / 2.0, torch.tensor([1])), z)
        assert torch.allclose(factor[n] @ factor[n].T, hessian, atol=1e-12)


# ---------------------------------------------------------------- piecewise-linearity: robustness

class SquaredReLU(nn.Module):
    """relu(x)²: not piecewise linear, but flat (zero) wherever its input is negative."""

    def forward(self, x):
        return F.relu(x) ** 2


def _dead_first_problem():
    """Every pre-activation of the first two samples is negative: on them the squared ReLU is
    inactive and the logits are locally constant, which fooled the old two-sample check."""
    model = nn.Sequential(nn.Linear(3, 4), SquaredReLU(), nn.Linear(4, 3)).to(DTYPE).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        model[0].weight.copy_(torch.rand(4, 3, generator=gen, dtype=DTYPE) + 0.1)  # positive
        model[0].bias.zero_()
    dead = -torch.ones(2, 3, dtype=DTYPE)                                  # pre-activations < 0
    alive = torch.rand(4, 3, generator=gen, dtype=DTYPE) + 0.1             # pre-activations > 0
    return model, torch.cat([dead, alive]), torch.tensor([0, 1, 2, 0, 1, 2])


def test_piecewise_linear_check_is_not_fooled_by_inactive_first_samples():
    model, inputs, _ = _dead_first_problem()
    trainable = dict(model.named_parameters())
    assert _numerical_reason(model, inputs[:2], trainable) is None  # the case that fooled it
    assert piecewise_linear_reason(model, inputs, trainable) is not None


def test_piecewise_linear_check_uses_noisy_copies_when_every_sample_is_inactive():
    """Blank (all-zero) samples with zero biases sit on the ReLU kink, where autograd's second
    derivative is 0: no real sample can tell; the seeded noisy copies can."""
    model, _, _ = _dead_first_problem()
    blank = torch.zeros(20, 3, dtype=DTYPE)
    trainable = dict(model.named_parameters())
    assert _numerical_reason(model, blank, trainable) is None
    reason = piecewise_linear_reason(model, blank, trainable)
    assert reason is not None and "not locally linear" in reason


def test_exact_hessian_on_the_fooling_model_matches_bruteforce():
    """With the check fooled, the Gauss-Newton path would drop the residual term."""
    model, inputs, targets = _dead_first_problem()
    reference = hessian_diagonal_bruteforce(model, inputs, targets, TEMPERATURE)
    sums, _ = accumulate_hessian(model, inputs, targets, method="exact", temperature=TEMPERATURE,
                                 num_probes=1, generator=None, want_squares=False)
    for name, diag in reference.items():
        assert _rel_err(sums[name], diag.sum(0)) < 1e-6, name
    with pytest.raises(ModelError, match="piecewise-linear"):
        accumulate_hessian(model, inputs, targets, method="curvature-propagation",
                           temperature=TEMPERATURE, num_probes=1, generator=None,
                           want_squares=False)


class GRUHead(nn.Module):
    """GRU over (N, L, 4) inputs, run with the batch on dimension 1, then a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.head = nn.GRU(4, 5), nn.Linear(5, 4)

    def forward(self, x):
        out, _ = self.rnn(x.transpose(0, 1))  # (L, N, 5)
        return self.head(out.mean(0))


def test_recurrent_model_exact_hessian_and_hutchinson_refusal():
    """Issue 18: a GRU (batch on dimension 1) crashed with a raw vmap error. The exact path now
    takes a per-sample loop and matches brute force; hutchinson names the module."""
    torch.manual_seed(0)
    model = GRUHead().to(DTYPE).eval()
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(4, 3, 4, generator=gen, dtype=DTYPE)
    targets = torch.randint(0, 4, (4,), generator=gen)
    sums, _ = accumulate_hessian(model, inputs, targets, method="exact", temperature=TEMPERATURE,
                                 num_probes=1, generator=None, want_squares=False)
    for param, diag in hessian_diagonal_bruteforce(model, inputs, targets, TEMPERATURE).items():
        assert _rel_err(sums[param], diag.sum(0)) < 1e-6, param
    with pytest.raises(ConfigError, match=r"module 'rnn' \(GRU\)"):
        accumulate_hessian(model, inputs, targets, method="hutchinson", temperature=TEMPERATURE,
                           num_probes=2, generator=None, want_squares=False)


def test_exact_with_position_ids_broadcast_over_the_batch():
    """Issue 18: position_ids of shape (1, L) are shared by all N samples; the exact Hessian
    diagonal of the position embedding must still be the per-sample sum (brute force)."""
    sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helper
    from importance_problems import PositionEmbeddings

    torch.manual_seed(0)
    model = PositionEmbeddings().to(DTYPE).eval()
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 9, (5, 7), generator=gen)  # (N, L)
    targets = torch.randint(0, 4, (5,), generator=gen)
    per_sample = hessian_diagonal_bruteforce(model, tokens, targets, TEMPERATURE)
    sums, _ = accumulate_hessian(model, tokens, targets, method="exact", temperature=TEMPERATURE,
                                 num_probes=1, generator=None, want_squares=False)
    assert per_sample["positions.weight"].abs().max() > 0
    for name, diag in per_sample.items():
        assert _rel_err(sums[name], diag.sum(0)) < 1e-6, name
