"""exact.py and curvature.py against brute force: per-unit forwards, autograd Hessians."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rdcompress.greedy.curvature import (
    _conv_kernel,
    _func_kernel,
    hessian_diagonal,
    second_order_scores,
)
from rdcompress.greedy.exact import exact_scores
from rdcompress.greedy.loss import batch_loss
from rdcompress.greedy.replacements import (
    prune_outcomes,
    rounding_grid,
    rounding_outcomes,
    unit_index,
)


def _mlp(outputs: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 6), nn.ReLU(),
                        nn.Linear(6, outputs)).double().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(12, 4)).double().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _data(loss: str, outputs: int, n: int = 40, shape=(5,)):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(n, *shape, generator=generator, dtype=torch.float64)
    if loss == "cross-entropy":
        return x, torch.randint(0, outputs, (n,), generator=generator)
    return x, torch.randn(n, outputs, generator=generator, dtype=torch.float64)


def _brute_exact(net, name, outcomes, x, y, loss):
    """Δ_u by plain forwards: set the unit to each outcome on a copy, average, subtract."""
    param = dict(net.named_parameters())[name]
    original = param.detach().clone()
    base = float(batch_loss(net(x), y, loss))
    scores = []
    for u in range(outcomes.q.numel()):
        member = (outcomes.unit_index == u).reshape(original.shape)
        expected = 0.0
        for value, prob in ((outcomes.low, 1 - outcomes.q[u]), (outcomes.high, outcomes.q[u])):
            param.data.copy_(torch.where(member, value, original))
            expected += float(prob) * float(batch_loss(net(x), y, loss))
        param.data.copy_(original)
        scores.append(abs(expected - base))
    return torch.tensor(scores, dtype=torch.float64)


@pytest.mark.parametrize("loss, outputs", [("cross-entropy", 3), ("mse", 2)])
@pytest.mark.parametrize("structured", [None, 0, 1])
def test_vectorized_exact_score_matches_per_unit_forwards(loss, outputs, structured):
    net = _mlp(outputs)
    x, y = _data(loss, outputs)
    name = "2.weight"
    w = net.get_parameter(name).detach()
    outcomes = prune_outcomes(w, 0.3, unit_index(tuple(w.shape), structured))
    units = torch.arange(outcomes.q.numel())
    got = exact_scores(net, name, outcomes, units, x, y, loss, chunk=5)
    torch.testing.assert_close(got, _brute_exact(net, name, outcomes, x, y, loss),
                               rtol=1e-9, atol=1e-13)
    subset = units[1::3]
    torch.testing.assert_close(exact_scores(net, name, outcomes, subset, x, y, loss), got[1::3])


def _autograd_hessian_diagonal(net, name, x, y, loss):
    param = net.get_parameter(name)
    base = param.detach().clone()

    def loss_of(flat):
        param.data  # noqa: B018  (the closure swaps the weight through functional_call)
        state = {n: p.detach() for n, p in net.named_parameters()}
        state[name] = flat.reshape(base.shape)
        return batch_loss(torch.func.functional_call(net, state, (x,)), y, loss)

    full = torch.autograd.functional.hessian(loss_of, base.reshape(-1))
    return full.diagonal().reshape(base.shape)


@pytest.mark.parametrize("loss, outputs", [("cross-entropy", 3), ("mse", 2)])
@pytest.mark.parametrize("name", ["0.weight", "2.weight", "4.weight"])
def test_linear_hessian_diagonal_is_exact_for_a_relu_mlp(loss, outputs, name):
    net = _mlp(outputs)
    x, y = _data(loss, outputs)
    want = _autograd_hessian_diagonal(net, name, x, y, loss)
    torch.testing.assert_close(hessian_diagonal(net, name, x, loss), want, rtol=1e-9,
                               atol=1e-12)
    torch.testing.assert_close(_func_kernel(net, name, x, loss), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", ["0.weight", "4.weight"])
def test_conv_hessian_diagonal_is_exact(name):
    net = _cnn()
    x, y = _data("cross-entropy", 4, n=12, shape=(1, 6, 6))
    want = _autograd_hessian_diagonal(net, name, x, y, "cross-entropy")
    torch.testing.assert_close(hessian_diagonal(net, name, x, "cross-entropy"), want,
                               rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(_func_kernel(net, name, x, "cross-entropy"), want, rtol=1e-9,
                               atol=1e-12)


@pytest.mark.parametrize("conv", [
    dict(kernel_size=3, padding=1, stride=2),
    dict(kernel_size=3, padding="same", padding_mode="reflect"),
    dict(kernel_size=(2, 3), groups=2, dilation=2, bias=False),
])
def test_conv_kernel_matches_autograd_for_strided_padded_grouped_convs(conv):
    torch.manual_seed(3)
    first = nn.Conv2d(2, 4, **conv)
    net = nn.Sequential(first, nn.ReLU(), nn.Conv2d(4, 3, 2), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 5)).double().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    x, y = _data("cross-entropy", 5, n=9, shape=(2, 7, 7))
    module = net[0]
    kernel = _conv_kernel(net, module, "0.weight", x, "cross-entropy")
    assert kernel is not None  # the per-sample conv path ran, not the fallback
    want = _autograd_hessian_diagonal(net, "0.weight", x, y, "cross-entropy")
    torch.testing.assert_close(kernel, want, rtol=1e-9, atol=1e-12)


def test_second_order_score_matches_exact_for_small_perturbations():
    """Fine grid (k = 4000): Var t ≤ (M/k)²/4, so third-order terms are negligible."""
    net = _mlp(3)
    x, y = _data("cross-entropy", 3)
    name = "2.weight"
    w = net.get_parameter(name).detach()
    outcomes = rounding_outcomes(w, rounding_grid(float(w.abs().max()), 4000, w.dtype))
    units = torch.arange(w.numel())
    exact = exact_scores(net, name, outcomes, units, x, y, "cross-entropy")
    fast = second_order_scores(hessian_diagonal(net, name, x, "cross-entropy"), outcomes, units)
    big = exact > 1e-3 * exact.max()  # where the score is not drowned in float64 rounding
    assert big.sum() > 0.7 * w.numel()
    torch.testing.assert_close(fast[big], exact[big], rtol=0.02, atol=0)


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    ra, rb = a.argsort().argsort().double(), b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


@pytest.mark.parametrize("name", ["0.weight", "2.weight"])
def test_second_order_score_ranks_pruning_candidates_like_the_exact_score(name):
    net = _mlp(3, seed=2)
    x, y = _data("cross-entropy", 3, n=80)
    w = net.get_parameter(name).detach()
    outcomes = prune_outcomes(w, 0.3, unit_index(tuple(w.shape), None))
    units = torch.arange(w.numel())
    exact = exact_scores(net, name, outcomes, units, x, y, "cross-entropy")
    fast = second_order_scores(hessian_diagonal(net, name, x, "cross-entropy"), outcomes, units)
    assert _spearman(fast, exact) > 0.8
    # the greedy picks from the bottom: the 30% lowest agree on most units
    count = int(0.3 * w.numel())
    low_fast = set(fast.argsort()[:count].tolist())
    low_exact = set(exact.argsort()[:count].tolist())
    assert len(low_fast & low_exact) >= 0.6 * count
