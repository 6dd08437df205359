"""`rdcompress bound`: table, CSV, plot, JSON, and one-line errors."""

from __future__ import annotations

import argparse
import csv
import json
import math

import numpy as np
import pytest

from rdcompress.cli import bound
from rdcompress.errors import ConfigError


def _run(argv):
    parser = argparse.ArgumentParser()
    bound.register(parser.add_subparsers())
    args = parser.parse_args(["bound", *argv])
    return args.func(args)


def test_table_csv_and_plot(tmp_path, capsys):
    csv_path, png_path = tmp_path / "rd.csv", tmp_path / "rd.png"
    assert _run(["--sigma-w", "3,2,1", "--sigma-x", "3,2,1", "--distortion", "5",
                 "--csv", str(csv_path), "--plot", str(png_path)]) == 0
    out = capsys.readouterr().out
    assert "D_max = 14" in out and out.count("<- kink") == 2 and "<- query" in out
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) >= 200
    kinks = [r for r in rows if r["kink"] == "1"]
    assert [float(r["distortion"]) for r in kinks] == pytest.approx([3.0, 9.0])
    assert float(kinks[0]["rate"]) == pytest.approx(math.log2(6))


def test_json_nats_and_matrix_file(tmp_path, capsys):
    matrix = np.array([[2.0, 0.5], [0.5, 1.0]])
    np.save(tmp_path / "sw.npy", matrix)
    np.savetxt(tmp_path / "sx.csv", np.array([[1.0, 0.0], [0.0, 2.0]]), delimiter=",")
    _run(["--sigma-w", str(tmp_path / "sw.npy"), "--sigma-x", str(tmp_path / "sx.csv"),
          "--units", "nats", "--json", "--rate", "1.0"])
    result = json.loads(capsys.readouterr().out)
    assert result["tight"] is False and result["units"] == "nats"
    assert result["queries"][0]["rate"] == pytest.approx(1.0)


@pytest.mark.parametrize("sigma_w, sigma_x, match", [
    ("1,-2", "1,1", "finite variances > 0"),
    ("1,2", "1,1,1", "dimensional"),
    ("1,x", "1,1", "comma-separated"),
    ("missing.npy", "1,1", "no such file"),
])
def test_errors(sigma_w, sigma_x, match):
    with pytest.raises(ConfigError, match=match):
        _run(["--sigma-w", sigma_w, "--sigma-x", sigma_x])


def test_non_pd_matrix_file(tmp_path):
    np.save(tmp_path / "bad.npy", np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ConfigError, match="positive definite"):
        _run(["--sigma-w", str(tmp_path / "bad.npy"), "--sigma-x", "1,1"])
