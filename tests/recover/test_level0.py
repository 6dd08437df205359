"""Level 0: BatchNorm re-estimation and bias correction against brute-force computations."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rdcompress.pipeline import tensor_loader
from rdcompress.recover import correct_bias, reestimate_batchnorm


def _loader(shape, n=19, batch_size=7, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, *shape, generator=generator) * 2 + 0.5
    return tensor_loader(inputs, torch.zeros(n, dtype=torch.long), batch_size)


def _all_inputs(loader):
    return torch.cat([x for x, _ in loader])


def _perturbed(model, seed=1, scale=0.2):
    """A 'compressed' copy: weights rounded to a coarse grid plus a bias-free offset."""
    compressed = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in compressed.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                weight = module.weight
                weight.copy_(torch.round(weight / scale) * scale
                             + 0.05 * torch.rand(weight.shape, generator=generator))
    return compressed


def test_batchnorm_statistics_are_the_population_moments():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                          nn.Dropout(0.5), nn.Flatten(), nn.Linear(3 * 5 * 5, 4),
                          nn.BatchNorm1d(4))
    loader = _loader((2, 5, 5))  # batches of 7, 7, 5: a cumulative average of batch variances
    model.train()                # would differ from the population variance
    tracked = model[1].num_batches_tracked.clone()
    names = reestimate_batchnorm(model, loader)
    assert names == ["1", "6"]
    x = _all_inputs(loader).double()
    conv = model[0].double()
    y = conv(x)  # (N, 3, 5, 5)
    expected_mean = y.mean(dim=(0, 2, 3))
    expected_var = y.permute(1, 0, 2, 3).reshape(3, -1).var(dim=1, unbiased=True)
    torch.testing.assert_close(model[1].running_mean.double(), expected_mean, rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(model[1].running_var.double(), expected_var, rtol=1e-5,
                               atol=1e-6)
    assert torch.equal(model[1].num_batches_tracked, tracked)
    assert model.training and all(m.training for m in model.modules())  # modes restored


def test_batchnorm_reestimation_sees_no_dropout():
    model = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.9), nn.BatchNorm1d(6)).eval()
    loader = _loader((4,), n=30, batch_size=10)
    reestimate_batchnorm(model, loader)
    h = model[0].double()(_all_inputs(loader).double())
    torch.testing.assert_close(model[2].running_mean.double(), h.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[2].running_var.double(), h.var(0), rtol=1e-5, atol=1e-6)
    assert not any(m.training for m in model.modules())


def _layer_inputs(model, layer, loader):
    seen = []
    handle = layer.register_forward_pre_hook(lambda m, a: seen.append(a[0].detach()))
    with torch.no_grad():
        for x, _ in loader:
            model(x)
    handle.remove()
    return torch.cat(seen)


@pytest.mark.parametrize("sequential", [True, False])
def test_layer_mode_zeroes_each_layers_own_mean_error(sequential):
    torch.manual_seed(0)
    original = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    compressed = _perturbed(original)
    loader = _loader((5,))
    report = correct_bias(original, compressed, loader, sequential=sequential, mode="layer")
    assert [r.target for r in report] == ["bias", "bias"]
    layers = [0] if not sequential else [0, 2]  # one pass: only the first layer's input is final
    for index in layers:
        x = _layer_inputs(compressed, compressed[index], loader).double()
        W, b = original[index].weight.double(), original[index].bias.double()
        W_hat, b_hat = compressed[index].weight.double(), compressed[index].bias.double()
        error = (x @ W.T + b) - (x @ W_hat.T + b_hat)  # (N, out)
        assert error.abs().mean() > 1e-2  # the layer is really compressed
        assert error.mean(0).abs().max() < 1e-5
    # before the correction the mean error was not zero
    x = _all_inputs(loader).double()
    before = _perturbed(original)[0]
    shift = (x @ (original[0].weight.double() - before.weight.double()).T).mean(0)
    assert shift.abs().max() > 1e-2


def test_network_mode_gives_every_layer_the_original_mean_output():
    torch.manual_seed(0)
    original = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(),
                             nn.Linear(6, 3)).eval()
    compressed = _perturbed(original)
    loader = _loader((5,))
    correct_bias(original, compressed, loader)  # mode="network", sequential
    for index in (0, 2, 4):
        x = _layer_inputs(original, original[index], loader).double()
        x_hat = _layer_inputs(compressed, compressed[index], loader).double()
        with torch.no_grad():
            y = F.linear(x, original[index].weight.double(), original[index].bias.double())
            y_hat = F.linear(x_hat, compressed[index].weight.double(),
                             compressed[index].bias.double())
        assert (y - y_hat).abs().mean() > 1e-2
        assert (y - y_hat).mean(0).abs().max() < 1e-5, index


def test_bias_correction_of_a_strided_padded_conv():
    torch.manual_seed(0)
    original = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU()).eval()
    compressed = _perturbed(original)
    loader = _loader((2, 7, 7))
    correct_bias(original, compressed, loader)
    x = _all_inputs(loader).double()
    conv, conv_hat = original[0].double(), compressed[0].double()
    error = conv(x) - conv_hat(x)  # (N, 4, 4, 4), brute force over every sample and position
    assert error.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert error.abs().mean() > 1e-2


def test_conv_without_bias_folds_into_the_following_batchnorm():
    torch.manual_seed(0)
    original = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3)).eval()
    with torch.no_grad():
        original[1].running_mean.copy_(torch.tensor([0.1, -0.2, 0.3]))
    compressed = _perturbed(original)
    loader = _loader((2, 5, 5))
    report = correct_bias(original, compressed, loader)
    assert report[0].target == "batchnorm:1"
    x = _all_inputs(loader).double()
    delta = (original[0].double()(x) - compressed[0].double()(x)).mean(dim=(0, 2, 3))
    torch.testing.assert_close(compressed[1].running_mean.double(),
                               original[1].running_mean.double() - delta, rtol=1e-5, atol=1e-6)
    # eval outputs now have the original's mean per channel (BatchNorm is affine per channel)
    with torch.no_grad():
        out, out_hat = original.double()(x), compressed.double()(x)
    scale = original[1].weight.double() / (original[1].running_var.double() + 1e-5).sqrt()
    torch.testing.assert_close((out - out_hat).mean(dim=(0, 2, 3)) / scale,
                               torch.zeros(3, dtype=torch.float64), atol=1e-5, rtol=0)


def test_layers_that_cannot_be_corrected_are_reported():
    torch.manual_seed(0)
    original = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 2)).eval()
    compressed = _perturbed(original)
    bias_before = compressed[2].bias.detach().clone()
    report = correct_bias(original, compressed, _loader((4,)), frozen={"2.bias"})
    assert [(r.layer, r.target) for r in report] == [("0", "skipped"), ("2", "skipped")]
    assert "no bias" in report[0].reason and "compressed" in report[1].reason
    assert torch.equal(compressed[2].bias, bias_before)


def test_unchanged_layers_are_left_alone():
    original = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    compressed = copy.deepcopy(original)
    assert correct_bias(original, compressed, _loader((4,))) == []
    assert all(torch.equal(a, b) for a, b in zip(original.state_dict().values(),
                                                 compressed.state_dict().values(), strict=True))
