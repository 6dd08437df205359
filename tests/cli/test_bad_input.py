"""Bad command-line input: a one-line error that says what to do, and nothing lost.

Each case was a traceback, a misleading message, a silently accepted value or an overwritten
input before; each asserts the exact kind of message and, where a file was at stake, its bytes.
"""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from rdcompress.cli.main import main
from rdcompress.compress import QuantizeConfig, compress
from rdcompress.errors import CheckpointError, ConfigError
from rdcompress.models import build, load_model
from rdcompress.pipeline import TensorBatches, make_loader, tensor_loader


def _save_model(path, name="digits-mlp", cast=None):
    state = {k: v.contiguous() for k, v in build(name).state_dict().items()}
    if cast is not None:
        state = {k: v.to(cast) for k, v in state.items()}
    save_file(state, path)
    path.with_suffix(".json").write_text(json.dumps(
        {"format": "rdcompress-model", "spec": {"zoo": name, "kwargs": {}}}))
    return path


@pytest.fixture
def files(tmp_path):
    weights = _save_model(tmp_path / "w.safetensors")
    rdz = tmp_path / "m.rdz"
    compress(build("digits-mlp"), QuantizeConfig(clusters=2),
             model_spec={"zoo": "digits-mlp", "kwargs": {}}).save(rdz)
    return weights, rdz


def _error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"rdcompress {command}: error:") and err.count("\n") == 1, err
    return err


def _usage_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def _snapshot(*paths):
    return {p: p.read_bytes() for p in paths}


def test_no_command_writes_over_its_input(files, tmp_path, capsys):
    weights, rdz = files
    sidecar = weights.with_suffix(".json")
    (tmp_path / "link.safetensors").symlink_to(weights)
    before = _snapshot(weights, sidecar, rdz)
    cases = [
        ("compress", [str(weights), "--method", "quantize", "--clusters", "2", "-o",
                      str(weights)], "-o .* is the same file as MODEL"),
        ("compress", [str(weights), "--method", "quantize", "--clusters", "2", "-o",
                      str(tmp_path / "link.safetensors")], "same file as MODEL"),
        ("compress", [str(weights), "--method", "quantize", "--clusters", "2", "-o",
                      str(sidecar)], "same file as MODEL's sidecar"),
        ("compress", [str(weights), "--method", "quantize", "--clusters", "2", "-o",
                      str(tmp_path / "a.rdz"), "--json", str(tmp_path / "a.rdz")],
         "-o and --json are the same file"),
        ("decompress", [str(rdz), "-o", str(rdz)], "is the same file as MODEL.rdz"),
        ("decompress", [str(tmp_path / "." / "m.rdz"), "-o", str(rdz)], "same file"),
        ("importance", [str(weights), "--objective", "baseline", "-o", str(weights)],
         "same file as MODEL"),
        ("evaluate", [str(weights), "--json", str(sidecar)], "same file as MODEL's sidecar"),
        ("evaluate", ["digits-mlp", "--weights", str(weights), "--json", str(weights)],
         "same file as --weights"),
        ("train", ["--epochs", "1", "-o", str(tmp_path / "t.json")],
         "-o and its sidecar are the same file"),
    ]
    for command, argv, message in cases:
        assert main([command, *argv]) == 2, argv
        assert re.search(message, _error(capsys, command)), (argv, message)
    assert _snapshot(weights, sidecar, rdz) == before
    renamed = tmp_path / "model.safetensors"  # a .rdz under another name: default output
    renamed.write_bytes(rdz.read_bytes())
    assert main(["decompress", str(renamed)]) == 2
    assert "the default output" in _error(capsys, "decompress")
    assert renamed.read_bytes() == rdz.read_bytes()


def test_compare_and_bound_do_not_write_over_their_inputs(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert main(["compare", str(a), str(b), "-o", str(a)]) == 2
    assert "is the sweep directory" in _error(capsys, "compare")
    covariance = tmp_path / "cov.npy"
    np.save(covariance, np.array([3.0, 2.0, 1.0]))
    before = covariance.read_bytes()
    assert main(["bound", "--sigma-w", str(covariance), "--sigma-x", "1,1,1",
                 "--plot", str(covariance)]) == 2
    assert "--plot" in _error(capsys, "bound") and covariance.read_bytes() == before


def test_bad_output_paths_are_refused_before_any_work(files, tmp_path, capsys):
    weights, rdz = files
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a directory")
    (tmp_path / "outdir").mkdir()
    base = ["compress", str(weights), "--method", "quantize", "--clusters", "2", "-o"]
    assert main([*base, str(blocker / "x.rdz")]) == 2
    assert "is a file, not a directory" in _error(capsys, "compress")
    assert main([*base, str(tmp_path / "outdir")]) == 2
    assert "is a directory; give a file name inside it" in _error(capsys, "compress")
    assert main(["decompress", str(rdz), "-o", str(tmp_path / "outdir")]) == 2
    assert "is a directory" in _error(capsys, "decompress")
    assert main(["sweep", "--model", str(weights), "-o", str(blocker)]) == 2
    assert "is a file, not a directory" in _error(capsys, "sweep")
    assert main(["importance", str(weights), "--objective", "baseline",
                 "-o", str(blocker / "i.safetensors")]) == 2
    assert "is a file, not a directory" in _error(capsys, "importance")
    assert blocker.read_text() == "not a directory"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_directory_is_refused(files, tmp_path, capsys):
    weights, _ = files
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    try:
        assert main(["compress", str(weights), "--method", "quantize", "--clusters", "2",
                     "-o", str(locked / "x.rdz")]) == 2
        assert "no permission to write in" in _error(capsys, "compress")
    finally:
        os.chmod(locked, 0o755)


def test_a_dataset_that_does_not_fit_the_model_is_named(tmp_path, capsys):
    mnist = _save_model(tmp_path / "mnist.safetensors", "mnist-mlp")
    cases = [
        ("evaluate", ["mnist-mlp", "--data", "digits", "--limit", "8"]),
        ("importance", [str(mnist), "--data", "digits", "--limit", "8", "-o",
                        str(tmp_path / "i.safetensors")]),
        ("compress", [str(mnist), "--method", "prune", "--ratio", "0.5", "--objective",
                      "fisher", "--data", "digits", "--limit", "8", "-o",
                      str(tmp_path / "c.rdz")]),
        ("sweep", ["--model", str(mnist), "--data", "digits", "--eval-limit", "8", "-o",
                   str(tmp_path / "sweep")]),
    ]
    for command, argv in cases:
        assert main([command, *argv]) == 2, argv
        err = _error(capsys, command)
        assert "does not take the inputs of dataset 'digits'" in err
        assert "a batch of shape (2, 1, 8, 8)" in err and "mnist" in err
        assert "2x64 and 784x256" in err  # the cause, in one line
    assert not (tmp_path / "i.safetensors").exists() and not (tmp_path / "c.rdz").exists()


def test_the_fit_probe_changes_nothing_and_passes_a_fitting_model():
    from rdcompress.pipeline import check_model_fits_data

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3)).train()
    stats = model[1].running_mean.clone()
    loader = tensor_loader(torch.randn(10, 4), torch.zeros(10, dtype=torch.long), 5)
    check_model_fits_data(model, loader, "toy", "toy-data")
    assert model.training and torch.equal(model[1].running_mean, stats)


@pytest.mark.parametrize("flag", ["--batch-size", "--limit"])
@pytest.mark.parametrize("value", ["0", "-5"])
def test_counts_must_be_positive(flag, value, capsys):
    err = _usage_error(capsys, ["evaluate", "digits-mlp", flag, value])
    assert f"argument {flag}: {value} must be a positive integer" in err.replace("'", "")
    err = _usage_error(capsys, ["sweep", "--eval-limit", value])
    assert "must be a positive integer" in err


def test_the_library_refuses_counts_that_drop_samples():
    data = TensorBatches(torch.rand(10, 1, 2, 2), torch.zeros(10, dtype=torch.long))
    from rdcompress.models import Preprocessing

    with pytest.raises(ConfigError, match="limit=-5 must be a positive integer"):
        make_loader(data, Preprocessing(), 4, limit=-5)
    with pytest.raises(ConfigError, match="batch_size=0 must be a positive integer"):
        make_loader(data, Preprocessing(), 0)
    assert len(make_loader(data, Preprocessing(), 4, limit=7).dataset) == 7


def test_model_paths_get_true_messages(files, tmp_path, capsys):
    weights, rdz = files
    assert main(["evaluate", str(tmp_path / "missing.safetensors")]) == 2
    err = _error(capsys, "evaluate")
    assert "does not exist" in err and "sidecar" not in err
    assert main(["evaluate", str(tmp_path / "runs" / "missing")]) == 2
    err = _error(capsys, "evaluate")
    assert "is not an existing file, a zoo model" in err and "unknown zoo model" not in err
    assert main(["evaluate", str(tmp_path)]) == 2
    err = _error(capsys, "evaluate")
    assert "is a directory" in err and "unknown zoo model" not in err
    assert main(["evaluate", str(weights.with_suffix(".json"))]) == 2
    assert "is a sidecar (or other JSON) file; give the weights file" in _error(capsys, "evaluate")


def test_silently_accepted_inputs_are_refused(files, tmp_path, capsys):
    weights, rdz = files
    assert main(["evaluate", str(rdz), "--weights", str(weights)]) == 2
    assert "holds its own weights; drop --weights" in _error(capsys, "evaluate")
    integers = _save_model(tmp_path / "int.safetensors", cast=torch.int32)
    with pytest.raises(CheckpointError, match=r"integer vs float dtype .*torch.int32 vs model "
                                              r"torch.float32"):
        load_model(integers)
    halves = _save_model(tmp_path / "half.safetensors", cast=torch.float16)
    assert load_model(halves).module.layers[1].weight.dtype == torch.float32  # float: fine


@pytest.mark.parametrize(("sidecar", "message"), [
    ("[" * 100_000 + "]" * 100_000, "is not valid JSON"),  # RecursionError before
    ('{"format": "rdcompress-model", "spec": {"zoo": "digits-mlp"}, "n": ' + "9" * 5000 + "}",
     "is not valid JSON"),  # int-digit limit ValueError before
    ('{"format": "rdcompress-model", "spec": {"zoo": "digits-mlp"}, '
     '"preprocessing": {"mean": [0.5], "std": [0]}}', "recorded preprocessing .* is not valid"),
    ('{"format": "rdcompress-model", "spec": {"zoo": "digits-mlp"}, '
     '"preprocessing": {"mean": 3, "std": 4}}', "recorded preprocessing .* is not valid"),
    ('{"format": "rdcompress-model", "spec": {"zoo": "digits-mlp"}, "dataset": ["x"]}',
     "recorded dataset .* is not a name"),
], ids=["deep-nesting", "huge-int", "zero-std", "scalar-mean", "list-dataset"])
def test_damaged_sidecars_are_checkpoint_errors(files, sidecar, message):
    weights, _ = files
    weights.with_suffix(".json").write_text(sidecar)
    with pytest.raises(CheckpointError, match=message):
        load_model(weights)
