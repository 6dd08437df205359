"""Evaluating a (compressed) model against its original on held-out data.

Distortions follow the paper (§3.2): for classifiers, E_x KL(f_ŵ(x) || f_w(x)) (eq. 3) with
f = softmax of the logits, and its reverse; for regressors, E_x ||f_w(x) − f_ŵ(x)||² (eq. 2).
Temperature scaling (Guo et al. 2017) is fitted on validation data by minimizing the NLL over T,
and the expected calibration error (ECE, 15 equal-width confidence bins) is reported before and
after.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar
from torch import nn
from torch.utils.data import DataLoader

from rdcompress.batches import BatchFn, unpack_batch
from rdcompress.errors import ConfigError, NonFiniteError


@torch.no_grad()
def collect_outputs(model: nn.Module, loader: DataLoader, device: str | torch.device = "cpu",
                    batch_fn: BatchFn | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``model`` in eval mode over ``loader``: (outputs (N, C) float64, targets (N,)).

    Batches are read by ``rdcompress.batches.unpack_batch`` (``batch_fn`` for other layouts)."""
    was_training = model.training
    model.eval()
    outputs, targets = [], []
    try:
        for batch in loader:
            inputs, target = unpack_batch(batch, batch_fn)
            if target is None:
                raise ConfigError("evaluation needs labels: the loader must yield (inputs, "
                                  "labels) batches, dicts with 'labels', or batch_fn must "
                                  "return labels")
            out = inputs.to(device)(model)
            outputs.append(out.detach().to("cpu", torch.float64))
            targets.append(target.detach().to("cpu"))
    finally:
        model.train(was_training)
    if not outputs:
        raise ConfigError("the evaluation data is empty")
    result = torch.cat(outputs)
    if not torch.isfinite(result).all():
        raise NonFiniteError("the model's outputs contain NaN/inf on the evaluation data")
    return result, torch.cat(targets)


@dataclass
class Metrics:
    num_samples: int
    accuracy: float | None = None
    cross_entropy: float | None = None
    kl: float | None = None  # E_x KL(f_compressed || f_original), nats
    reverse_kl: float | None = None  # E_x KL(f_original || f_compressed), nats
    agreement: float | None = None  # fraction of top-1 predictions equal to the original's
    output_mse: float | None = None  # E_x ||f_w(x) - f_ŵ(x)||², for regression models

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor,
                           reference_logits: torch.Tensor | None = None,
                           temperature: float = 1.0) -> Metrics:
    """Accuracy, cross-entropy (nats) and, given the original's logits, the KL distortions."""
    logits = logits.double() / temperature
    log_p = F.log_softmax(logits, dim=1)  # (N, C)
    metrics = Metrics(
        num_samples=len(labels),
        accuracy=float((logits.argmax(1) == labels).double().mean()),
        cross_entropy=float(F.nll_loss(log_p, labels)),
    )
    if reference_logits is not None:
        if reference_logits.shape != logits.shape:
            raise ConfigError(f"reference outputs {tuple(reference_logits.shape)} differ from "
                              f"outputs {tuple(logits.shape)}")
        log_q = F.log_softmax(reference_logits.double() / temperature, dim=1)
        metrics.kl = float((log_p.exp() * (log_p - log_q)).sum(1).mean())
        metrics.reverse_kl = float((log_q.exp() * (log_q - log_p)).sum(1).mean())
        metrics.agreement = float((logits.argmax(1) == reference_logits.argmax(1)).double().mean())
    return metrics


def regression_metrics(outputs: torch.Tensor, reference_outputs: torch.Tensor) -> Metrics:
    diff = (outputs.double() - reference_outputs.double()).reshape(len(outputs), -1)
    return Metrics(num_samples=len(outputs), output_mse=float((diff**2).sum(1).mean()))


def evaluate(model: nn.Module, loader: DataLoader, reference: nn.Module | None = None,
             task: str = "classification", device: str | torch.device = "cpu",
             batch_fn: BatchFn | None = None) -> Metrics:
    """Metrics of ``model`` on ``loader``; with ``reference`` (the original), its distortion too."""
    outputs, targets = collect_outputs(model, loader, device, batch_fn)
    reference_outputs = collect_outputs(reference, loader, device, batch_fn)[0] \
        if reference else None
    if task == "regression":
        if reference_outputs is None:
            return Metrics(num_samples=len(outputs),
                           output_mse=float(((outputs - targets.double().view_as(outputs))**2)
                                            .reshape(len(outputs), -1).sum(1).mean()))
        return regression_metrics(outputs, reference_outputs)
    if task != "classification":
        raise ConfigError(f"task={task!r} must be 'classification' or 'regression'")
    return classification_metrics(outputs, targets, reference_outputs)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor,
                    bounds: tuple[float, float] = (0.05, 100.0)) -> float:
    """The temperature T minimizing the NLL of softmax(logits / T) (Guo et al. 2017).

    One-dimensional and smooth in log T, so a bounded scalar search on log T finds it to
    about 1e-6 relative; the bounds keep degenerate cases (perfectly separable data) finite.
    """
    if len(logits) == 0:
        raise ConfigError("cannot fit a temperature on empty data")
    logits64, labels = logits.detach().double(), labels.detach()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(logits64 / math.exp(log_t), labels))

    low, high = math.log(bounds[0]), math.log(bounds[1])
    result = minimize_scalar(nll, bounds=(low, high), method="bounded",
                             options={"xatol": 1e-7})
    return float(math.exp(result.x))


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15,
                               temperature: float = 1.0) -> float:
    """ECE: Σ_b (|B_b|/N) |acc(B_b) − conf(B_b)| over equal-width confidence bins."""
    probs = F.softmax(logits.double() / temperature, dim=1)
    confidence, predicted = probs.max(1)
    correct = (predicted == labels).double()
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    # bin b holds confidences in (edges[b], edges[b+1]]; confidence >= 1/C > 0 always
    bins = torch.bucketize(confidence, edges[1:-1], right=False)
    ece = torch.zeros((), dtype=torch.float64)
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            gap = correct[in_bin].mean() - confidence[in_bin].mean()
            ece += in_bin.double().mean() * gap.abs()
    return float(ece)


@dataclass
class CalibrationReport:
    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(val_logits: torch.Tensor, val_labels: torch.Tensor, test_logits: torch.Tensor,
              test_labels: torch.Tensor) -> CalibrationReport:
    """Fit T on validation outputs; report ECE and NLL on test outputs before and after."""
    temperature = fit_temperature(val_logits, val_labels)
    return CalibrationReport(
        temperature=temperature,
        ece_before=expected_calibration_error(test_logits, test_labels),
        ece_after=expected_calibration_error(test_logits, test_labels, temperature=temperature),
        nll_before=float(F.cross_entropy(test_logits.double(), test_labels)),
        nll_after=float(F.cross_entropy(test_logits.double() / temperature, test_labels)),
    )
