"""greedy_compress: parity with a naive loop, .rdz round trips, determinism, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rdcompress.codec import read_rdz
from rdcompress.compress import load
from rdcompress.errors import ConfigError, NonFiniteError
from rdcompress.greedy import GreedyConfig, greedy_compress
from rdcompress.greedy.loss import batch_loss
from rdcompress.greedy.replacements import rounding_grid
from rdcompress.pipeline import tensor_loader


def _net(seed: int = 0, dtype=torch.float64, hidden: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 3)).to(dtype)


def _loader(n: int = 48, dtype=torch.float64, regression: bool = False):
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(n, 4, generator=generator, dtype=dtype)
    if regression:
        return tensor_loader(x, torch.randn(n, 3, generator=generator, dtype=dtype), 16)
    return tensor_loader(x, torch.randint(0, 3, (n,), generator=generator), 16)


def _naive_greedy(net, loader, config):
    """The paper's loop written plainly: per step, score each untouched weight by two forwards
    on a copy, replace the argmin by one draw (same generator convention), freeze it."""
    net = copy.deepcopy(net).eval()
    x = torch.cat([b[0] for b in loader])
    y = torch.cat([b[1] for b in loader])
    generator = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        for name in ("0.weight", "2.weight"):
            param = net.get_parameter(name)
            flat = param.data.view(-1)
            original = flat.clone()
            if config.mode == "quantize":
                levels = rounding_grid(float(original.abs().max()), config.k, original.dtype)
            remaining = list(range(flat.numel()))
            for _ in range(int(config.alpha * flat.numel() + 1e-9)):
                base = float(batch_loss(net(x), y, "cross-entropy"))
                best = None
                for i in remaining:
                    w = float(original[i])
                    if config.mode == "prune":
                        lo, hi, q = 0.0, float(torch.tensor(w / config.p, dtype=flat.dtype)), \
                            config.p
                    else:
                        up = int(torch.searchsorted(levels, original[i]))
                        lo_i = up if float(levels[up]) == w else up - 1
                        lo, hi = float(levels[lo_i]), float(levels[up])
                        q = 0.0 if hi == lo else (w - lo) / (hi - lo)
                    expected = 0.0
                    for value, prob in ((lo, 1 - q), (hi, q)):
                        flat[i] = value
                        expected += prob * float(batch_loss(net(x), y, "cross-entropy"))
                    flat[i] = original[i]
                    score = abs(expected - base)
                    if best is None or score < best[0]:
                        best = (score, i, lo, hi, q)
                _, i, lo, hi, q = best
                u = float(torch.rand(1, generator=generator, dtype=torch.float64))
                flat[i] = hi if u < q else lo
                remaining.remove(i)
    return net.state_dict()


@pytest.mark.parametrize("config", [
    GreedyConfig(mode="prune", p=0.3, alpha=0.9, score="exact", seed=4),
    GreedyConfig(mode="quantize", k=2, alpha=0.7, score="exact", seed=1),
], ids=["prune", "quantize"])
def test_exact_greedy_equals_the_naive_loop(config):
    net, loader = _net(), _loader()
    compressed = greedy_compress(net, loader, config)
    want = _naive_greedy(net, loader, config)
    for key, value in compressed.state_dict().items():
        assert torch.equal(value, want[key]), key


CONFIGS = {
    "prune": GreedyConfig(mode="prune", p=0.3, alpha=0.9),
    "prune-exact": GreedyConfig(mode="prune", p=0.5, alpha=0.6, score="exact"),
    "quantize-composite": GreedyConfig(mode="quantize", k=3, alpha=0.9),
    "quantize-all": GreedyConfig(mode="quantize", k=2, alpha=1.0, block=7),
    "rows": GreedyConfig(mode="prune", structured=True, dim=0, score="exact"),
    "columns": GreedyConfig(mode="prune", structured=True, dim=1, alpha=0.5),
}


@pytest.mark.parametrize("key", list(CONFIGS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rdz_round_trip_is_bit_exact_and_the_original_untouched(tmp_path, key, dtype):
    config = CONFIGS[key]
    net = _net(dtype=dtype, hidden=6)
    before = copy.deepcopy(net.state_dict())
    compressed = greedy_compress(net, _loader(dtype=dtype), config)
    path = tmp_path / "g.rdz"
    compressed.save(path)
    loaded, manifest = load(path, model=_net(seed=9, dtype=dtype, hidden=6),
                            return_manifest=True)
    for name, value in compressed.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert manifest["method"] == config.method
    assert GreedyConfig.from_dict(manifest["settings"]) == config
    stored = read_rdz(path).manifest
    composite = config.mode == "quantize" and config.alpha < 1
    assert bool(stored.get("composites")) == composite
    for stats in manifest["layers"]:
        units = stats["shape"][config.dim] if config.structured else stats["numel"]
        steps = int(config.alpha * units + 1e-9)
        per_unit = stats["numel"] // units
        assert stats["replaced"] == steps * per_unit
        new = compressed.state_dict()[stats["name"]].reshape(-1)
        old = before[stats["name"]].reshape(-1)
        changed = int((new != old).sum())
        assert changed <= stats["replaced"]
        if config.mode == "prune":
            survivors = (new != 0) & (new != old)
            torch.testing.assert_close(new[survivors], (old[survivors].double() / config.p)
                                       .to(dtype))
            assert stats["kept"] == stats["numel"] - int(((new == 0) & (old != 0)).sum())


def test_rows_are_pruned_or_scaled_whole():
    net = _net(hidden=8)
    compressed = greedy_compress(net, _loader(), GreedyConfig(structured=True, p=0.5))
    old, new = net[0].weight.detach(), compressed.state_dict()["0.weight"]
    for row_old, row_new in zip(old, new, strict=True):
        assert (torch.equal(row_new, row_old) or torch.equal(row_new, torch.zeros_like(row_old))
                or torch.equal(row_new, row_old / 0.5))


def test_quantized_weights_round_to_a_grid_neighbour():
    net = _net(hidden=8)
    config = GreedyConfig(mode="quantize", k=2, alpha=1.0)
    new = greedy_compress(net, _loader(), config).state_dict()["0.weight"]
    old = net[0].weight.detach()
    levels = rounding_grid(float(old.abs().max()), 2, old.dtype)
    assert torch.isin(new, levels).all()
    assert ((new - old).abs() <= old.abs().max() / 2 * (1 + 1e-12)).all()


def test_a_seed_fixes_the_result_and_another_seed_changes_it():
    net, loader = _net(hidden=8), _loader()
    runs = [greedy_compress(net, loader, GreedyConfig(seed=s)).state_dict() for s in (3, 3, 4)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert any(not torch.equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_regression_targets_select_mse():
    compressed = greedy_compress(_net(), _loader(regression=True), GreedyConfig())
    assert compressed.manifest["objective"] == "loss:mse"
    with pytest.raises(ConfigError, match="cross-entropy needs"):
        greedy_compress(_net(), _loader(regression=True), GreedyConfig(loss="cross-entropy"))


def test_pruned_fraction_follows_one_minus_alpha_plus_alpha_p():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 100), nn.ReLU(), nn.Linear(100, 3))
    x = torch.randn(64, 20)
    loader = tensor_loader(x, torch.randint(0, 3, (64,)), 64)
    compressed = greedy_compress(net, loader, GreedyConfig(p=0.3, alpha=0.9), layers=["0.weight"])
    stats = compressed.layers["0.weight"]
    # kept = (1 − α)·n + Binomial(α·n, p): mean 0.37·2000, sd sqrt(1800·0.21) ≈ 19.4
    assert abs(stats.kept - 0.37 * 2000) < 4 * 19.5


@pytest.mark.parametrize("kwargs, message", [
    ({"p": 0.0}, "p=0.0"), ({"p": 1.5}, "p=1.5"), ({"p": float("nan")}, "p=nan"),
    ({"k": 0}, "k=0"), ({"k": 2.5}, "k=2.5"), ({"alpha": 0}, "alpha=0"),
    ({"alpha": 1.01}, "alpha=1.01"), ({"mode": "cluster"}, "mode='cluster'"),
    ({"score": "hutch"}, "score='hutch'"), ({"loss": "l1"}, "loss='l1'"),
    ({"block": 0}, "block=0"), ({"dim": 2}, "dim=2"),
    ({"mode": "quantize", "structured": True}, "structured=True applies"),
])
def test_bad_settings_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        GreedyConfig(**kwargs)


def test_non_finite_weights_and_unsupported_structure_are_refused():
    net = _net()
    net[0].weight.data[1, 2] = float("nan")
    with pytest.raises(NonFiniteError, match="0.weight"):
        greedy_compress(net, _loader(), GreedyConfig())
    norm = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 3)).double()
    with pytest.raises(ConfigError, match="LayerNorm"):
        greedy_compress(norm, _loader(), GreedyConfig(structured=True), layers=["1.weight"])
    with pytest.raises(ConfigError, match="not parameters"):
        greedy_compress(_net(), _loader(), GreedyConfig(), layers=["nope"])
    with pytest.raises(ConfigError, match="GreedyConfig"):
        greedy_compress(_net(), _loader(), {"mode": "prune"})  # type: ignore[arg-type]


def test_batch_fn_reads_batches_in_another_layout():
    """(inputs, mask, targets) batches are refused as ambiguous, read exactly with a batch_fn."""
    config = GreedyConfig(mode="prune", p=0.5, alpha=0.5, seed=3)
    standard = greedy_compress(_net(), _loader(), config)
    masked = [(x, torch.ones_like(x, dtype=torch.bool), y) for x, y in _loader()]
    with pytest.raises(ConfigError, match="batch_fn"):
        greedy_compress(_net(), masked, config)
    read = greedy_compress(_net(), masked, config, batch_fn=lambda batch: ((batch[0],), batch[2]))
    for name, tensor in standard.state_dict().items():
        assert torch.equal(tensor, read.state_dict()[name]), name
