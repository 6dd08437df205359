"""Where files are looked for: search order, layouts within a root, the missing-files error."""

from __future__ import annotations

import pytest

from rdcompress.data import load_dataset, locate, search_roots
from rdcompress.errors import DatasetNotFoundError


def test_search_order(tmp_path, monkeypatch, isolated):
    monkeypatch.setenv("RDCOMPRESS_DATA_DIR", str(tmp_path / "env"))
    assert search_roots(tmp_path / "explicit") == [
        tmp_path / "explicit", tmp_path / "env", isolated / ".cache" / "rdcompress" / "datasets",
        isolated / "system-datasets"]


def test_first_root_with_the_files_wins(writers, tmp_path, monkeypatch, isolated):
    places = {
        "system": isolated / "system-datasets" / "mnist",
        "home": isolated / ".cache" / "rdcompress" / "datasets" / "mnist",
        "env": tmp_path / "env",  # files directly in the root
        "explicit": tmp_path / "explicit" / "mnist",
    }
    sizes = {"system": 1, "home": 2, "env": 3, "explicit": 4}
    monkeypatch.setenv("RDCOMPRESS_DATA_DIR", str(tmp_path / "env"))
    for place in ("system", "home", "env", "explicit"):
        writers.mnist(places[place], n_test=sizes[place], n_train=10)
    assert locate("mnist", tmp_path / "explicit") == places["explicit"]
    assert len(load_dataset("mnist", "test", data_dir=tmp_path / "explicit")) == 4
    assert len(load_dataset("mnist", "test")) == 3
    monkeypatch.delenv("RDCOMPRESS_DATA_DIR")
    assert len(load_dataset("mnist", "test")) == 2
    (places["home"] / "t10k-images-idx3-ubyte.gz").unlink()  # incomplete: skipped
    assert len(load_dataset("mnist", "test")) == 1


def test_torchvision_and_cifar_layouts(writers, tmp_path):
    writers.mnist(tmp_path / "MNIST" / "raw", gz=False)
    assert locate("mnist", tmp_path) == tmp_path / "MNIST" / "raw"
    writers.cifar10(tmp_path / "cifar10" / "cifar-10-batches-py")
    assert locate("cifar10", tmp_path) == tmp_path / "cifar10" / "cifar-10-batches-py"
    (tmp_path / "cifar100").mkdir()
    (tmp_path / "cifar100" / "cifar-100-python.tar.gz").write_bytes(b"")
    assert locate("cifar100", tmp_path) == tmp_path / "cifar100" / "cifar-100-python.tar.gz"
    assert locate("cifar10-jpeg", tmp_path) is None
    assert locate("digits").name == "digits.csv.gz"


def test_missing_files_error_names_files_and_places(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path, download=False)
    message = str(info.value)
    for expected in ("t10k-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", str(tmp_path),
                     f"{tmp_path / 'fashion-mnist'}/", "apt-get install dataset-fashion-mnist",
                     "RDCOMPRESS_DATA_DIR", "download=False"):
        assert expected in message
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    with pytest.raises(DatasetNotFoundError, match="cifar10-jpeg.tar.gz"):
        load_dataset("cifar10-jpeg", "test", data_dir=tmp_path)  # no URL: no download tried


def test_downloads_go_to_the_user_cache_folder(tmp_path, monkeypatch):
    from rdcompress.data.paths import download_root

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download_root() == tmp_path / "xdg" / "rdcompress" / "datasets"
