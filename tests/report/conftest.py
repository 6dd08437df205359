"""A tiny real sweep (digits, 4 runs) made once per session, and its report."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> Path:
    """A finished ``rdcompress sweep`` directory: digits-mlp trained 1 epoch, pruning at two
    kept fractions and quantization at two k, evaluated on 120 test images."""
    from rdcompress.sweep import SweepConfig, run_sweep

    out = tmp_path_factory.mktemp("sweep")
    run_sweep(SweepConfig(model="digits-mlp", output_dir=str(out), methods=("prune", "quantize"),
                          objectives=("baseline",), grid={"prune": (0.3, 0.6),
                                                          "quantize": (2, 8)},
                          train_epochs=1, eval_limit=120))
    return out


@pytest.fixture(scope="session")
def tiny_report(tiny_sweep, tmp_path_factory) -> Path:
    from rdcompress.report import ReportConfig, build_report

    path = tmp_path_factory.mktemp("report") / "report.html"
    build_report(ReportConfig([str(tiny_sweep)], output=str(path), gallery=8))
    return path
