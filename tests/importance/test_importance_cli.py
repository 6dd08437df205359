"""``rdcompress importance`` end to end on the embedded digits data (random-init model)."""

from __future__ import annotations

import argparse

import pytest
import torch

from rdcompress.cli import importance as cli
from rdcompress.errors import ImportanceMismatchError
from rdcompress.importance import Importance


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["importance", *argv])
    return args.func(args)


def test_cli_writes_a_loadable_file(tmp_path, capsys):
    from rdcompress.models import build_from_spec
    out = tmp_path / "imp.safetensors"
    torch.manual_seed(0)
    assert _run(["digits-mlp", "--data", "digits", "--limit", "40", "--objective", "gradient",
                 "--temperature", "auto", "-o", str(out)]) == 0
    imp = Importance.load(out)
    assert imp.objective == "gradient" and imp.num_samples == 40
    assert imp.temperature is not None and imp.temperature > 0
    assert imp.metadata["model"]["zoo"] == "digits-mlp"
    assert "samples ->" in capsys.readouterr().out
    other = build_from_spec(imp.metadata["model"])  # random init: other weights
    with pytest.raises(ImportanceMismatchError):
        Importance.load(out, other)


def test_cli_rejects_bad_temperature():
    with pytest.raises(SystemExit):
        _run(["digits-mlp", "--temperature", "warm", "-o", "x.safetensors"])


def test_cli_gradient_hessian_with_a_stochastic_estimator_uses_two_probes(tmp_path):
    out = tmp_path / "gh.safetensors"
    torch.manual_seed(0)
    assert _run(["digits-mlp", "--data", "digits", "--limit", "16", "--objective",
                 "gradient+hessian", "--hessian-method", "curvature-propagation",
                 "-o", str(out)]) == 0
    imp = Importance.load(out)
    assert imp.quartic is not None and imp.metadata["config"]["num_probes"] == 2
