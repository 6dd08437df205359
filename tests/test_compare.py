"""Comparing finished sweeps: merged fronts, renamed methods, refusals."""

import hashlib
import json

import pytest

from rdcompress.cli.main import main
from rdcompress.compare import compare_sweeps
from rdcompress.errors import ConfigError, FormatError


def _sweep(path, model_bytes, rows, eval_limit=None, accuracy=None):
    """A finished sweep's sweep.json (results.py), with the model's weights as a hash."""
    path.mkdir()
    config = {"model": "net.safetensors", "weights": None, "data": "digits",
              "eval_split": "test", "eval_limit": eval_limit}
    model = {"source": "net.safetensors", "weights_sha256": hashlib.sha256(model_bytes).hexdigest()}
    reference = {"accuracy": accuracy} if accuracy is not None else {}
    (path / "sweep.json").write_text(json.dumps({"format": 1, "config": config, "model": model,
                                                 "reference": reference, "rows": rows}))
    return path


def _row(method, ratio, accuracy):
    return {"method": method, "objective": "baseline", "setting": f"r={ratio}",
            "file_ratio": ratio, "file_bytes": 100, "bits_per_weight": 32 / ratio,
            "accuracy": accuracy, "cross_entropy": 1 - accuracy, "kl": 1 - accuracy}


@pytest.fixture
def two_sweeps(tmp_path):
    a = _sweep(tmp_path / "a", b"same", [_row("quantize", 4, 0.9), _row("prune", 2, 0.8)])
    b = _sweep(tmp_path / "b", b"same", [_row("quantize", 8, 0.7), _row("lowrank", 3, 0.85)])
    return a, b


def test_merge_renames_shared_methods_only(two_sweeps, tmp_path):
    result = compare_sweeps(two_sweeps, tmp_path / "out", labels=["A", "B"])
    assert sorted(r["method"] for r in result.rows) == ["A/quantize", "B/quantize", "lowrank",
                                                        "prune"]
    assert {r["sweep"] for r in result.rows} == {"A", "B"}
    for name in ("compare.json", "compare.md", "frontier.png", "frontier.csv"):
        assert (tmp_path / "out" / name).is_file()
    table = (tmp_path / "out" / "compare.md").read_text()
    assert "| 4 | - | 90.0% (baseline, r=4, 4.0×) | 70.0% (baseline, r=8, 8.0×) | - |" in table


def test_different_models_or_samples_are_refused(tmp_path):
    a = _sweep(tmp_path / "a", b"one", [_row("quantize", 4, 0.9)])
    b = _sweep(tmp_path / "b", b"two", [_row("prune", 2, 0.8)])
    c = _sweep(tmp_path / "c", b"one", [_row("prune", 2, 0.8)], eval_limit=500)
    with pytest.raises(ConfigError, match="not comparable.*allow-different"):
        compare_sweeps([a, b], tmp_path / "out")
    with pytest.raises(ConfigError, match="eval_limit: None vs 500"):
        compare_sweeps([a, c], tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written
    e = _sweep(tmp_path / "e", b"one", [_row("prune", 2, 0.8)], accuracy=0.98)
    d = _sweep(tmp_path / "d", b"one", [_row("prune", 2, 0.8)], accuracy=0.97)
    with pytest.raises(ConfigError, match="original accuracy: 0.98 vs 0.97"):
        compare_sweeps([e, d], tmp_path / "out")
    assert len(compare_sweeps([a, b], tmp_path / "out", allow_different=True).rows) == 2


def test_bad_directories_get_clear_errors(two_sweeps, tmp_path):
    a, b = two_sweeps
    with pytest.raises(ConfigError, match="at least two"):
        compare_sweeps([a], tmp_path / "out")
    with pytest.raises(ConfigError, match="no sweep.json: it is not a finished sweep"):
        compare_sweeps([a, tmp_path], tmp_path / "out")
    with pytest.raises(ConfigError, match="distinct"):
        compare_sweeps([a, b], tmp_path / "out", labels=["x", "x"])
    with pytest.raises(ConfigError, match="without '/'"):
        compare_sweeps([a, b], tmp_path / "out", labels=["x/1", "y"])
    (b / "sweep.json").write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        compare_sweeps([a, b], tmp_path / "out")


def test_cli(two_sweeps, tmp_path, capsys):
    a, b = two_sweeps
    assert main(["compare", str(a), str(b), "-o", str(tmp_path / "out")]) == 0
    assert "a/quantize" in capsys.readouterr().out
    assert main(["compare", str(a), "-o", str(tmp_path / "out")]) == 2
