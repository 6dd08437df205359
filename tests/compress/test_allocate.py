"""Allocation to a target: real files within budget, the exact optimum on small menus, the
closed loop on measured KL, and clear refusals."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from compress_helpers import fake_importance, tiny_net  # noqa: E402

from rdcompress import load  # noqa: E402
from rdcompress.codec import read_rdz  # noqa: E402
from rdcompress.compress import AllocateConfig, compress, config_from_dict  # noqa: E402
from rdcompress.compress.allocate import build_menus, choose, layer_menu  # noqa: E402
from rdcompress.compress.api import _layer_inputs, select_layers  # noqa: E402
from rdcompress.errors import ConfigError  # noqa: E402
from rdcompress.evaluate import evaluate  # noqa: E402
from rdcompress.kernels.uniform import reconstruct  # noqa: E402


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(12, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(),
                        nn.Linear(32, 5)).eval()
    with torch.no_grad():
        net[4].weight.mul_(8.0)  # confident outputs, as a trained net's: KL is not near 0
    return net


def calibration(seed: int = 0, n: int = 256) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=gen)
    y = torch.randint(0, 5, (n,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=64)


@pytest.mark.parametrize("kwargs, match", [
    ({}, "exactly one target"),
    ({"target_bytes": 100, "max_kl": 0.1}, "exactly one target"),
    ({"target_bytes": 0}, "whole number of bytes"),
    ({"target_bytes": 10.5}, "whole number of bytes"),
    ({"target_ratio": 0.5}, ">= 1"),
    ({"max_kl": -1.0}, "negative"),
    ({"max_kl": float("nan")}, "finite"),
    ({"target_ratio": 4, "quantizer": "magic"}, "quantizer"),
    ({"target_ratio": 4, "step_range": (1.0, 0.5)}, "step_range"),
    ({"target_ratio": 4, "search": "best"}, "search"),
])
def test_bad_configs_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        AllocateConfig(**kwargs)


def test_config_round_trips_through_a_dict():
    config = AllocateConfig(max_kl=0.01, quantizer="gptq", rd_factors=(0.5,))
    assert config_from_dict(config.to_dict()) == config
    assert config.needs == {"calibration"}
    assert AllocateConfig(target_ratio=8).needs == set()


@pytest.mark.parametrize("target", [2500, 4000, 9000])
def test_file_meets_a_byte_target_and_loads_bit_exactly(tmp_path, target):
    model = mlp()
    result = compress(model, AllocateConfig(target_bytes=target), fake_importance(model))
    summary = result.save(tmp_path / "a.rdz")
    assert summary.file_bytes <= target
    assert (tmp_path / "a.rdz").stat().st_size == summary.file_bytes
    assert result.report["file_bytes"] == summary.file_bytes
    loaded = load(tmp_path / "a.rdz", model=model)
    for name, tensor in result.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert read_rdz(tmp_path / "a.rdz").manifest["method"] == "allocate"
    # biases are allocated too
    assert {r["layer"] for r in result.report["layers"]} == {n for n, _ in
                                                               model.named_parameters()}


def test_more_bytes_never_predict_more_distortion():
    model = mlp()
    importance = fake_importance(model)
    distortions = [compress(model, AllocateConfig(target_bytes=b), importance).report[
        "predicted_distortion"] for b in (2500, 3500, 5000, 8000)]
    assert all(a >= b for a, b in itertools.pairwise(distortions))


def test_exact_search_is_the_brute_force_optimum_over_the_menus():
    model = mlp()
    importance = fake_importance(model)
    config = AllocateConfig(target_bytes=3000, steps_per_octave=1, step_range=(0.25, 8.0),
                            search="exact", include_vectors=False)
    params = dict(model.named_parameters())
    names = select_layers(params, None)
    layers = _layer_inputs(params, names, importance, importance.weights_sha256)
    menus = build_menus(layers, config, "ans")
    budget = 2600.0
    best = min(sum(c.distortion for c in combo) for combo in itertools.product(*menus)
               if sum(c.bytes for c in combo) <= budget)
    assert choose(menus, budget, config).distortion == pytest.approx(best, rel=1e-12)


def test_every_menu_offers_the_raw_layer_and_predicts_its_own_distortion():
    model = mlp()
    importance = fake_importance(model)
    params = dict(model.named_parameters())
    layer = _layer_inputs(params, ["0.weight"], importance, importance.weights_sha256)[0]
    menu = layer_menu(layer, AllocateConfig(target_ratio=4, importance_floor=0.0), "ans")
    assert menu[0].raw and menu[0].distortion == 0.0 and menu[0].bytes == 12 * 48 * 4
    w = layer.weight.to(torch.float64)
    for candidate in menu[1:]:
        w_hat = reconstruct(candidate.step, candidate.levels).astype(np.float64)
        recomputed = float((layer.I * (w - torch.from_numpy(w_hat).reshape(w.shape)) ** 2).sum())
        assert candidate.distortion == pytest.approx(recomputed, rel=1e-9)
        zero = float((layer.I * w * w).sum())
        assert candidate.distortion <= 0.5 * zero  # the trust region


def test_impossible_targets_say_what_is_possible():
    model = mlp()
    with pytest.raises(ConfigError, match=r"smallest file this model can be written to: \d+"):
        compress(model, AllocateConfig(target_bytes=300), fake_importance(model))
    with pytest.raises(ConfigError, match="needs calibration"):
        compress(model, AllocateConfig(max_kl=0.01), fake_importance(model))
    with pytest.raises(ConfigError, match="needs calibration"):
        compress(model, AllocateConfig(target_ratio=4, quantizer="gptq"))


@pytest.mark.parametrize("max_kl", [0.002, 0.02])
def test_closed_loop_meets_the_measured_kl(tmp_path, max_kl):
    model, data = mlp(), calibration()
    result = compress(model, AllocateConfig(max_kl=max_kl, bisection_steps=6),
                      fake_importance(model), calibration=data)
    measured = result.report["measured"]
    assert measured["measured_kl"] <= max_kl
    result.save(tmp_path / "a.rdz")
    # the file's model measures what the loop measured
    metrics = evaluate(load(tmp_path / "a.rdz", model=model), data, reference=model)
    assert metrics.kl == pytest.approx(measured["measured_kl"], rel=1e-9, abs=1e-15)
    trace = result.report["trace"]
    assert trace[0]["measured_kl"] > max_kl  # the smallest file misses: the loop had to search
    assert all(t["measured_kl"] > max_kl for t in trace if t["layer_bytes"] < measured[
        "layer_bytes"])  # and every smaller budget it measured missed too


def test_a_looser_kl_gives_a_smaller_file(tmp_path):
    model, data = mlp(), calibration()
    sizes = []
    for max_kl in (0.001, 0.05):
        result = compress(model, AllocateConfig(max_kl=max_kl, bisection_steps=6), None,
                          calibration=data)
        sizes.append(result.save(tmp_path / f"{max_kl}.rdz").file_bytes)
    assert sizes[1] < sizes[0]


def test_accuracy_drop_target_and_gptq_on_a_conv_net(tmp_path):
    model = tiny_net()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(128, 1, 6, 6, generator=gen)
    with torch.no_grad():
        y = model(x).argmax(1)  # labels the original gets right: accuracy 100%
    data = DataLoader(TensorDataset(x, y), batch_size=32)
    result = compress(model, AllocateConfig(max_accuracy_drop=1.0, quantizer="gptq",
                                            bisection_steps=5), fake_importance(model),
                      calibration=data)
    assert result.report["measured"]["accuracy_drop"] <= 1.0
    result.save(tmp_path / "g.rdz")
    loaded = load(tmp_path / "g.rdz", model=model)
    assert evaluate(loaded, data).accuracy >= 0.99 - 1e-12


def test_gptq_measures_less_kl_than_rounding_at_equal_file_bytes(tmp_path):
    model, data = mlp(), calibration(n=512)
    importance = fake_importance(model)
    kls = {}
    for quantizer in ("round", "gptq"):
        result = compress(model, AllocateConfig(target_bytes=2600, quantizer=quantizer),
                          importance, calibration=data)
        assert result.save(tmp_path / f"{quantizer}.rdz").file_bytes <= 2600
        kls[quantizer] = evaluate(load(tmp_path / f"{quantizer}.rdz", model=model), data,
                                  reference=model).kl
    assert kls["gptq"] < kls["round"]


def test_a_cache_reuses_the_menus_across_targets_with_identical_results(tmp_path):
    model = mlp()
    importance = fake_importance(model)
    cache: dict = {}
    first = compress(model, AllocateConfig(target_bytes=3000), importance, cache=cache)
    assert len(cache) == 1
    again = compress(model, AllocateConfig(target_bytes=3000), importance, cache=cache)
    other = compress(model, AllocateConfig(target_bytes=5000), importance, cache=cache)
    assert len(cache) == 1  # same menus: only the target differs
    fresh = compress(model, AllocateConfig(target_bytes=5000), importance)
    assert again.save(tmp_path / "a.rdz").file_bytes == first.save(tmp_path / "b.rdz").file_bytes
    for name, tensor in fresh.state_dict().items():
        assert torch.equal(other.state_dict()[name], tensor)
    compress(model, AllocateConfig(target_bytes=3000, steps_per_octave=3), importance,
             cache=cache)
    assert len(cache) == 2  # other settings: other menus


def test_weights_of_zero_importance_are_not_moved_far():
    """A weight whose sampled importance is 0 (a channel dead on the samples) stays near its
    value: the importance floor and the nearest-level tie-break keep it off the grid's end."""
    model = mlp()
    importance = fake_importance(model)
    importance.quadratic["2.weight"][:4] = 0.0  # four dead output rows
    result = compress(model, AllocateConfig(target_bytes=9000), importance)
    w, w_hat = model[2].weight.detach(), result.state_dict()["2.weight"]
    step = next(r["step"] for r in result.report["layers"] if r["layer"] == "2.weight")
    assert step is not None
    assert (w[:4] - w_hat[:4]).abs().max() <= (w[:4].abs().max() + step)  # never beyond zero


@pytest.mark.parametrize("quantizer, coder, version", [("round", "ctx", 3), ("dq", "ans", 4),
                                                        ("dq-rdo", "ans", 4)])
def test_context_coder_and_dependent_quantization_write_exact_files(tmp_path, quantizer, coder,
                                                                     version):
    model = mlp()
    result = compress(model, AllocateConfig(target_bytes=3000, quantizer=quantizer),
                      fake_importance(model), coder=coder)
    summary = result.save(tmp_path / "a.rdz")
    assert summary.file_bytes <= 3000 and summary.format_version == version
    loaded = load(tmp_path / "a.rdz", model=model)
    for name, tensor in result.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    choices = {row["choice"] for row in result.report["layers"]}
    assert choices <= {"raw", "uniform" if quantizer == "round" else "dq"} and choices != {"raw"}


def test_dq_menu_predicts_its_own_distortion_and_beats_rounding():
    from rdcompress.kernels.trellis import dq_reconstruct

    model = mlp()
    importance = fake_importance(model)
    params = dict(model.named_parameters())
    layer = _layer_inputs(params, ["2.weight"], importance, importance.weights_sha256)[0]
    config = AllocateConfig(target_ratio=4, importance_floor=0.0, quantizer="dq-rdo")
    menu = layer_menu(layer, config, "ans")
    assert {c.lam > 0 for c in menu[1:]} == {False, True}  # λ = 0 and the rd_factors
    w = layer.weight.to(torch.float64).reshape(-1).numpy()
    I = layer.I.reshape(-1).numpy()
    for candidate in menu[1:]:
        assert candidate.dq_cols == 48 and candidate.kind == "dq"
        w_hat = dq_reconstruct(candidate.step, candidate.levels, 48).astype(np.float64)
        assert candidate.distortion == pytest.approx(float((I * (w - w_hat) ** 2).sum()),
                                                     rel=1e-9)
    # at equal bytes the trellis predicts less distortion than one grid (best of each menu
    # at the budget of rounding's median candidate)
    rounded = layer_menu(layer, AllocateConfig(target_ratio=4, importance_floor=0.0), "ans")[1:]
    wins = 0
    for candidate in rounded:
        cheaper = [c.distortion for c in menu[1:] if c.bytes <= candidate.bytes]
        wins += bool(cheaper) and min(cheaper) < candidate.distortion
    assert wins >= 0.6 * len(rounded)


def test_gptq_trellis_writes_exact_files_and_measures_less_kl_than_the_plain_trellis(tmp_path):
    model, data = mlp(), calibration(n=512)
    importance = fake_importance(model)
    kls = {}
    for quantizer in ("dq", "gptq-dq"):
        config = AllocateConfig(target_bytes=2600, quantizer=quantizer)
        result = compress(model, config, importance, calibration=data)
        summary = result.save(tmp_path / f"{quantizer}.rdz")
        assert summary.file_bytes <= 2600 and summary.format_version == 4
        loaded = load(tmp_path / f"{quantizer}.rdz", model=model)
        for name, tensor in result.state_dict().items():
            assert torch.equal(loaded.state_dict()[name], tensor), name
        kls[quantizer] = evaluate(loaded, data, reference=model).kl
    assert AllocateConfig(target_ratio=4, quantizer="gptq-dq").needs == {"calibration"}
    assert kls["gptq-dq"] < kls["dq"]  # measured on the calibration data
