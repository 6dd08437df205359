"""Every CLI command end to end on the embedded digits data."""

import json

import pytest

from rdcompress.cli.main import COMMANDS, build_parser, main


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"rdcompress {command}" in out and len(out) > 200


def test_top_level_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
    assert build_parser().prog == "rdcompress"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "digits.safetensors"
    assert main(["train", "--model", "digits-mlp", "--epochs", "8", "-o", str(out)]) == 0
    return out


def test_train_writes_weights_and_sidecar(trained):
    sidecar = json.loads(trained.with_suffix(".json").read_text())
    assert sidecar["spec"] == {"zoo": "digits-mlp", "kwargs": {}}
    assert sidecar["dataset"] == "digits" and sidecar["seed"] == 0
    assert sidecar["metrics"]["test"]["accuracy"] > 0.85


def test_evaluate_with_reference_and_calibration(trained, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(trained), "--reference", str(trained), "--calibrate",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["kl"] == 0.0 and result["agreement"] == 1.0
    assert result["accuracy"] > 0.85
    assert result["calibration"]["temperature"] > 0
    assert "accuracy" in capsys.readouterr().out


def test_models_lists_the_zoo(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("digits-mlp", "mnist-mlp", "resnet20", "lenet5", "vgg-cifar"):
        assert name in out


def test_known_errors_are_one_line(capsys, tmp_path):
    assert main(["evaluate", str(tmp_path / "missing.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rdcompress evaluate: error:") and err.count("\n") == 1
