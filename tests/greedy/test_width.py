"""The width experiment (greedy/width.py) and its CLI command, on tiny widths."""

from __future__ import annotations

import argparse

import pytest
import torch

from rdcompress.cli import width as width_cli
from rdcompress.errors import ConfigError
from rdcompress.greedy.width import (
    WidthConfig,
    load_split,
    normalized_error,
    read_csv,
    run_width,
    summarize,
)


def test_normalized_error_by_hand():
    reference = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    compressed = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    assert normalized_error(reference, compressed) == pytest.approx(1 / 5)
    assert normalized_error(reference, reference) == 0.0


def test_diabetes_split_is_fixed_and_standardized():
    first, second = load_split("diabetes"), load_split("diabetes")
    assert torch.equal(first.x_test, second.x_test)
    assert first.x_train.shape == (354, 10) and first.x_test.shape == (88, 10)
    assert first.regression and first.y_train.shape == (354, 1)
    torch.testing.assert_close(first.x_train.mean(0), torch.zeros(10), atol=1e-5, rtol=0)
    torch.testing.assert_close(first.y_train.std(unbiased=False), torch.tensor(1.0))


@pytest.mark.slow
def test_a_tiny_width_run_writes_rows_csv_and_plot(tmp_path):
    config = WidthConfig(widths=(4, 8), seeds=(0,), train_steps=20, calibration_samples=64,
                         layer_sets=("all", "hidden"), output_dir=str(tmp_path), threads=1)
    rows = run_width(config)
    assert len(rows) == 2 * 2 * 2 * 2  # datasets x widths x modes x layer sets
    assert (tmp_path / "width.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = read_csv(tmp_path / "width.csv")
    assert len(table) == len(rows)
    for stored, row in zip(table, rows, strict=True):
        assert stored["normalized_error"] == pytest.approx(row["normalized_error"])
        assert stored["normalized_error"] >= 0 and stored["file_bytes"] > 0
        if row["mode"] == "prune":
            assert stored["expected_kept"] == pytest.approx(0.1 + 0.9 * 0.3)
            assert 0 < stored["kept_fraction"] < 1
        else:
            assert stored["kept_fraction"] == 1.0
        assert (stored["accuracy"] is None) == (row["dataset"] == "diabetes")
    summary = summarize(table)
    assert {(r["dataset"], r["width"]) for r in summary} == {
        (d, w) for d in ("digits", "diabetes") for w in (4, 8)}


def test_cli_parses_and_runs_a_tiny_grid(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    width_cli.register(parser.add_subparsers())
    args = parser.parse_args(["width", "--widths", "4", "--seeds", "1", "--datasets",
                              "diabetes", "--modes", "prune", "--train-steps", "10",
                              "--calibration", "32", "-o", str(tmp_path)])
    assert args.func(args) == 0
    assert len(read_csv(tmp_path / "width.csv")) == 1
    assert "normalized_error" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, message", [
    ({"datasets": ("mnist",)}, "dataset 'mnist'"), ({"layer_sets": ("first",)}, "layer set"),
    ({"widths": (0,)}, "widths"), ({"p": 0.0}, "p=0.0"), ({"modes": ("cut",)}, "mode='cut'"),
    ({"threads": 0}, "threads=0"),
])
def test_bad_width_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        WidthConfig(**kwargs)
