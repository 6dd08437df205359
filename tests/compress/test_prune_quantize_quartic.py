"""algorithm="optimal" minimizes the quartic term too (gradient+hessian), in quantize and in
prune+quantize: no "ignored quartic" warning, and never worse than quartic k-means."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from compress_helpers import fake_importance, tiny_net  # noqa: E402

from rdcompress.compress import PruneQuantizeConfig, QuantizeConfig, compress  # noqa: E402
from rdcompress.quantize import optimal_quantize  # noqa: E402

LAYERS = ("0.weight", "4.weight")


def test_optimal_uses_the_quartic_term_without_warning():
    net = tiny_net()
    importance = fake_importance(net, quartic=True)
    for name in importance.quartic:  # make the quartic term matter
        importance.quartic[name] = importance.quartic[name] * 1e4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimal = compress(net, QuantizeConfig(clusters=4, algorithm="optimal"), importance)
    quartic = compress(net, QuantizeConfig(clusters=4, algorithm="quartic"), importance)
    params = dict(net.named_parameters())
    for name in LAYERS:
        assert optimal.layers[name].distortion <= quartic.layers[name].distortion * (1 + 1e-9)
        w = params[name].detach().reshape(-1)
        I = importance.quadratic[name].reshape(-1)
        H = importance.quartic[name].reshape(-1) / 4  # the API stores H = quartic / 4
        expected = optimal_quantize(w, I, 4, H=H)
        assert optimal.layers[name].distortion == pytest.approx(expected.objective, rel=1e-5)
        quadratic_only = optimal_quantize(w, I, 4)
        d2 = (w.double() - torch.from_numpy(quadratic_only.reconstruction)) ** 2
        ignoring_h = float((I.double() * d2 + H.double() * d2 * d2).sum())
        assert expected.objective <= ignoring_h * (1 + 1e-12)


def test_prune_quantize_optimal_with_quartic():
    net = tiny_net()
    importance = fake_importance(net, quartic=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compressed = compress(net, PruneQuantizeConfig(0.5, clusters=3, algorithm="optimal"),
                              importance)
    for name in LAYERS:
        w_hat = compressed.state_dict()[name]
        assert torch.unique(w_hat[w_hat != 0]).numel() <= 3


def test_lloyd_still_warns_about_the_ignored_quartic_term():
    net = tiny_net()
    with pytest.warns(UserWarning, match="quartic term"):
        compress(net, QuantizeConfig(clusters=4), fake_importance(net, quartic=True))
