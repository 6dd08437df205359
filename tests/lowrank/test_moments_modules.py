"""Input moments by hooks vs direct computation; factorized modules vs the dense composition."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rdcompress.errors import ConfigError
from rdcompress.lowrank import (
    InputMoments,
    LowRankConv2d,
    LowRankLinear,
    collect_input_moments,
    factorize_modules,
    truncated_svd,
)


def _net(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 5, 3, stride=2, padding=1, dilation=1), nn.ReLU(),
        nn.Conv2d(5, 6, 3, padding=2, dilation=2, bias=False), nn.ReLU(),
        nn.Flatten(), nn.Linear(6 * 4 * 4, 7), nn.ReLU(), nn.Linear(7, 3),
    ).double().eval()


def _batches(n=3, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 2, 8, 8, generator=gen, dtype=torch.float64), torch.zeros(4))
            for _ in range(n)]


def test_linear_and_conv_moments_match_a_direct_computation():
    net, batches = _net(), _batches()
    moments = collect_input_moments(net, batches).moments()
    assert set(moments) == {"0.weight", "2.weight", "5.weight", "7.weight"}
    x = torch.cat([b[0] for b in batches])  # (12, 2, 8, 8)
    # conv 0: explicit patches, one (in·kh·kw,) vector per output position
    padded = F.pad(x, (1, 1, 1, 1))
    patches = [padded[:, :, i:i + 3, j:j + 3].reshape(len(x), -1)
               for i in range(0, 8, 2) for j in range(0, 8, 2)]
    rows = torch.cat(patches)  # (12·16, 18)
    torch.testing.assert_close(moments["0.weight"], rows.T @ rows / len(rows))
    hidden = net[:7](x)  # input of the Linear 7
    torch.testing.assert_close(moments["7.weight"], hidden.T @ hidden / len(hidden))
    assert not net[0]._forward_pre_hooks  # hooks are freed


def test_moments_merge_like_one_pass():
    net, batches = _net(), _batches(4)
    whole = collect_input_moments(net, batches)
    merged = collect_input_moments(net, batches[:1]).merge(collect_input_moments(net, batches[1:]))
    for name, moment in whole.moments().items():
        torch.testing.assert_close(merged.moments()[name], moment)
    assert merged.counts == whole.counts
    stats = merged.layer_statistics()
    assert stats["5.weight"]["input_moment"].shape == (96, 96)


def test_unsupported_layers_are_named():
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ConfigError, match="groups=2"):
        InputMoments(grouped)
    with pytest.raises(ConfigError, match="no Linear/Conv2d"):
        InputMoments(_net(), names=["1.weight"])


def _factorize_all(net, rank):
    factors = {}
    for name, p in net.named_parameters():
        if name.endswith("weight"):
            factors[name] = truncated_svd(p.detach().reshape(p.shape[0], -1), rank)
    return factors


def test_factorized_modules_compute_the_dense_composed_model():
    net = _net()
    factors = _factorize_all(net, rank=2)
    factorized = factorize_modules(net, factors)
    dense = _net()
    with torch.no_grad():
        for name, (A, B) in factors.items():
            dense.get_parameter(name).copy_((A @ B).reshape(dense.get_parameter(name).shape))
    x = _batches(1)[0][0]
    torch.testing.assert_close(factorized(x), dense(x), rtol=1e-10, atol=1e-10)
    assert isinstance(factorized[0], LowRankConv2d) and isinstance(factorized[5], LowRankLinear)
    assert factorized[2].bias is None and factorized[0].rank == 2
    assert isinstance(net[0], nn.Conv2d)  # the original is untouched
    torch.testing.assert_close(factorized[2].dense_weight(), dense[2].weight)


def test_full_rank_factorization_reproduces_the_model():
    net = _net()
    factors = {"5.weight": truncated_svd(net[5].weight.detach(), 7)}
    x = _batches(1)[0][0]
    torch.testing.assert_close(factorize_modules(net, factors)(x), net(x))


def test_factorize_modules_rejects_bad_targets():
    net = _net()
    with pytest.raises(ConfigError, match="not the weight"):
        factorize_modules(net, {"5.bias": (torch.ones(7, 1), torch.ones(1, 1))})
    with pytest.raises(ConfigError, match="do not make"):
        factorize_modules(net, {"5.weight": (torch.ones(7, 2), torch.ones(2, 5))})
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(ConfigError, match="groups=2"):
        factorize_modules(grouped, {"0.weight": (torch.ones(4, 1), torch.ones(1, 18))})
