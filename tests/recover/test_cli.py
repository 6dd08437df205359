"""``rdcompress recover`` end to end on the embedded digits data, and its errors."""

import json

import pytest
import torch

from rdcompress.cli.main import main
from rdcompress.compress import load


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("recover-cli")
    trained = root / "digits.safetensors"
    assert main(["train", "--model", "digits-mlp", "--epochs", "2", "--limit", "400",
                 "-o", str(trained)]) == 0
    rdz = root / "q.rdz"
    assert main(["compress", str(trained), "--method", "prune+quantize", "--keep", "0.5",
                 "--clusters", "4", "-o", str(rdz)]) == 0
    return trained, rdz


def test_recover_writes_a_file_that_loads_to_what_was_evaluated(files, tmp_path, capsys):
    trained, rdz = files
    out, report = tmp_path / "r.rdz", tmp_path / "r.json"
    assert main(["recover", str(rdz), "--reference", str(trained), "--epochs", "2",
                 "--lr", "1e-3", "--limit", "300", "--eval-limit", "200", "-o", str(out),
                 "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "agreement" in printed and "wrote" in printed
    result = json.loads(report.read_text())
    assert [row["epoch"] for row in result["history"]] == [0, 1, 2]
    assert result["settings"]["loss"] == "distill"
    module, manifest = load(out, return_manifest=True)
    assert manifest["recovery"]["settings"]["epochs"] == 2
    assert torch.isfinite(module(torch.randn(3, 64))).all()


@pytest.mark.parametrize(("extra", "message"), [
    (["--epochs", "1", "--loss", "distill"], "needs the original model: pass --reference"),
    (["--reference", "mnist-mlp", "--epochs", "0"], "not the compressed model's architecture"),
    (["--loss", "task", "--lr", "-1"], "lr=-1.0 must be a finite number > 0"),
])
def test_bad_settings_are_one_line_errors(files, tmp_path, capsys, extra, message):
    _, rdz = files
    assert main(["recover", str(rdz), *extra, "-o", str(tmp_path / "x.rdz")]) == 2
    assert message in capsys.readouterr().err


def test_bad_paths_are_one_line_errors(files, tmp_path, capsys):
    trained, rdz = files
    assert main(["recover", str(rdz), "--loss", "task", "-o", str(rdz)]) == 2
    assert "same file as MODEL" in capsys.readouterr().err
    assert main(["recover", str(tmp_path / "none.rdz"), "--loss", "task", "-o",
                 str(tmp_path / "y.rdz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["recover", str(trained), "--loss", "task", "-o", str(tmp_path / "y.rdz")]) == 2
    assert "is not a .rdz file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["recover", str(rdz), "--epochs", "-1", "-o", str(tmp_path / "y.rdz")])
    assert exit_info.value.code == 2
    assert "must be >= 0" in capsys.readouterr().err
