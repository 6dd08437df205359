import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rdcompress.evaluate import (
    calibrate,
    classification_metrics,
    evaluate,
    expected_calibration_error,
    fit_temperature,
)
from rdcompress.models import Preprocessing
from rdcompress.pipeline import TensorBatches, make_loader


def test_kl_matches_hand_computation():
    logits = torch.tensor([[0.0, math.log(3.0)]], dtype=torch.float64)  # p = (1/4, 3/4)
    reference = torch.tensor([[0.0, 0.0]])  # q = (1/2, 1/2)
    m = classification_metrics(logits, torch.tensor([1]), reference)
    p = torch.tensor([0.25, 0.75], dtype=torch.float64)
    q = torch.tensor([0.5, 0.5], dtype=torch.float64)
    assert m.kl == pytest.approx(float((p * (p / q).log()).sum()), rel=1e-12)
    assert m.reverse_kl == pytest.approx(float((q * (q / p).log()).sum()), rel=1e-12)
    assert m.cross_entropy == pytest.approx(-math.log(0.75))
    assert m.accuracy == 1.0
    assert m.agreement == 0.0  # argmax of (0, 0) is class 0


def test_identical_models_have_zero_distortion():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    loader = make_loader(TensorBatches(torch.rand(50, 4), torch.randint(0, 3, (50,))),
                         Preprocessing(), batch_size=16)
    m = evaluate(model, loader, reference=model)
    assert m.kl == 0.0 and m.reverse_kl == 0.0 and m.agreement == 1.0
    assert m.num_samples == 50


def test_fit_temperature_recovers_the_generating_temperature():
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(20000, 5, generator=generator)
    true_t = 2.5
    labels = torch.multinomial(F.softmax(logits / true_t, 1), 1, generator=generator).squeeze(1)
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.05)


def test_fit_temperature_is_the_nll_minimizer():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(500, 4, generator=generator) * 4
    labels = torch.multinomial(F.softmax(logits / 3, 1), 1, generator=generator).squeeze(1)
    t = fit_temperature(logits, labels)
    nll = lambda s: float(F.cross_entropy(logits.double() / s, labels))  # noqa: E731
    assert nll(t) <= nll(t * 1.01) and nll(t) <= nll(t / 1.01)


def test_ece_hand_case():
    # two samples, both predicted with confidence 0.9 (one bin): accuracy 0.5 -> ECE 0.4
    logits = torch.tensor([[math.log(9.0), 0.0], [math.log(9.0), 0.0]])
    labels = torch.tensor([0, 1])
    assert expected_calibration_error(logits, labels) == pytest.approx(0.4)


def test_calibration_reduces_nll_of_overconfident_model():
    generator = torch.Generator().manual_seed(2)
    logits = 2 * torch.randn(4000, 3, generator=generator)
    labels = torch.multinomial(F.softmax(logits, 1), 1, generator=generator).squeeze(1)
    overconfident = logits * 4
    report = calibrate(overconfident[:2000], labels[:2000], overconfident[2000:], labels[2000:])
    assert report.temperature == pytest.approx(4.0, rel=0.15)
    assert report.nll_after < report.nll_before
    assert report.ece_after < report.ece_before
