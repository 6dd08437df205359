"""``rdcompress datasets`` end to end, through its own register() (not the global parser)."""

from __future__ import annotations

import argparse

import pytest

from rdcompress.cli import datasets as datasets_cli
from rdcompress.errors import DatasetNotFoundError


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="rdcompress")
    datasets_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["datasets", *argv])
    return args.func(args)


def test_table_lists_every_dataset(tmp_path, writers, capsys):
    writers.mnist(tmp_path / "mnist", n_train=30, n_test=7)
    assert _run(["--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "FORMAT", "TRAIN/VAL/TEST", "LOCATION"]
    rows = {line.split()[0]: line for line in out[1:]}
    assert set(rows) == {"digits", "mnist", "fashion-mnist", "cifar10", "cifar100",
                         "cifar10-jpeg"}
    assert "1079/359/359" in rows["digits"] and "digits.csv.gz" in rows["digits"]
    assert "27/3/7" in rows["mnist"] and str(tmp_path / "mnist") in rows["mnist"]
    assert "missing: put data_batch_1" in rows["cifar10"]
    assert str(tmp_path / "cifar10") in rows["cifar10"]


def test_digits_all_splits(capsys):
    assert _run(["digits", "--split", "all"]) == 0
    out = capsys.readouterr().out
    for split, n in (("train", 1079), ("val", 359), ("test", 359)):
        assert f"digits [{split}]: {n} images, images ({n}, 1, 8, 8) uint8" in out
    assert "float view = value / 16" in out and "0=36, 1=36, 2=35" in out
    assert "checksums: sklearn digits: bundled with scikit-learn" in out


def test_dataset_with_checksum_status(tmp_path, writers, capsys):
    writers.mnist(tmp_path / "mnist", n_train=30, n_test=7)
    assert _run(["mnist", "--data-dir", str(tmp_path), "--split", "val"]) == 0
    out = capsys.readouterr().out
    assert "mnist [val]: 3 images" in out
    assert "train-images-idx3-ubyte.gz: not checked (not the canonical size)" in out


def test_missing_dataset_raises_typed_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="download=False"):
        _run(["cifar100", "--data-dir", str(tmp_path), "--no-download"])


def test_help_mentions_search_order(capsys):
    with pytest.raises(SystemExit):
        _run(["--help"])
    out = capsys.readouterr().out
    assert "RDCOMPRESS_DATA_DIR" in out and "--split" in out and "image folder" in out
