"""Downloads with an injected fake fetcher: URL order, verification, atomic placement."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import urllib.error

import numpy as np
import pytest
import torch

from rdcompress.data import DATASETS, load_dataset
from rdcompress.errors import ChecksumError, DatasetNotFoundError


class FakeServer:
    """Serves {url: bytes}; an absent URL fails like a dead network."""

    def __init__(self, payloads):
        self.payloads = payloads
        self.calls: list[str] = []

    def __call__(self, url, timeout):
        self.calls.append(url)
        assert timeout <= 30  # a short timeout, never a hang
        if url not in self.payloads:
            raise urllib.error.URLError(f"unreachable: {url}")
        return self.payloads[url]


def _mnist_server(helpers, monkeypatch, regzip=True):
    """Small IDX files served from the second MNIST mirror; the registry md5s patched to them."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), np.uint8),
        "train-labels-idx1-ubyte": (np.arange(20) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28), np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(10) % 10).astype(np.uint8),
    }
    info = DATASETS["mnist"]
    payloads = {}
    for name, array in arrays.items():
        content = helpers.idx(array)
        monkeypatch.setitem(info.md5, name, hashlib.md5(content).hexdigest())
        # mtime=1 vs 0: different gzip bytes, same content -- the content md5 is what counts
        payloads[info.urls[1] + name + ".gz"] = gzip.compress(content, mtime=1 if regzip else 0)
    return FakeServer(payloads), arrays


def test_download_falls_back_to_the_second_mirror(helpers, monkeypatch, isolated):
    server, arrays = _mnist_server(helpers, monkeypatch)
    test = load_dataset("mnist", "test", downloader=server)
    assert server.calls[0].startswith("https://ossci-datasets.s3.amazonaws.com/mnist/")
    assert server.calls[1].startswith("http://yann.lecun.com/exdb/mnist/")
    target = isolated / ".cache" / "rdcompress" / "datasets" / "mnist"
    assert sorted(p.name for p in target.iterdir()) == sorted(f"{n}.gz" for n in arrays)
    assert torch.equal(test.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    calls = len(server.calls)
    load_dataset("mnist", "train", downloader=server)  # now on disk: no more requests
    assert len(server.calls) == calls


def test_checksum_mismatch_saves_nothing(helpers, monkeypatch, isolated):
    server, _ = _mnist_server(helpers, monkeypatch)
    monkeypatch.setitem(DATASETS["mnist"].md5, "train-images-idx3-ubyte", "0" * 32)
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte") as info:
        load_dataset("mnist", "test", downloader=server)
    assert "0" * 32 in str(info.value) and "yann.lecun.com" in str(info.value)
    target = isolated / ".cache" / "rdcompress" / "datasets" / "mnist"
    assert not target.exists() or not list(target.iterdir())  # no file, no temporary left


def test_network_failure_names_missing_files(tmp_path):
    server = FakeServer({})
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("fashion-mnist", "test", data_dir=tmp_path, downloader=server)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message and "unreachable" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert server.calls == ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
                            "train-images-idx3-ubyte.gz"]


def test_default_downloader_is_used_and_offline_in_tests(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="network disabled in tests"):
        load_dataset("mnist", "test", data_dir=tmp_path)


def _cifar_archive(writers, tmp_path, helpers):
    writers.cifar10(tmp_path / "src" / "cifar-10-batches-py")
    archive = helpers.tar_gz(tmp_path / "src" / "cifar-10-batches-py", tmp_path / "c.tar.gz",
                             arcname="cifar-10-batches-py")
    return archive.read_bytes()


def test_cifar_download_unpacks_verified_batches(writers, tmp_path, helpers, monkeypatch,
                                                 isolated):
    payload = _cifar_archive(writers, tmp_path, helpers)
    with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                data = tar.extractfile(member).read()
                monkeypatch.setitem(DATASETS["cifar10"].md5, member.name.split("/")[-1],
                                    hashlib.md5(data).hexdigest())
    server = FakeServer({"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz": payload})
    test = load_dataset("cifar10", "test", downloader=server)
    target = isolated / ".cache" / "rdcompress" / "datasets" / "cifar10" / "cifar-10-batches-py"
    assert test.source == target and len(test) == 5
    # The download verified every member; on load, a 5-row batch is not of canonical size.
    assert test.checksums == {"test_batch": "not checked (not the canonical size)",
                              "batches.meta": "verified"}
    batch = pickle.loads((tmp_path / "src" / "cifar-10-batches-py" / "test_batch").read_bytes())
    assert test.labels.tolist() == batch["labels"]


def test_cifar_download_with_wrong_member_md5(writers, tmp_path, helpers):
    payload = _cifar_archive(writers, tmp_path, helpers)  # registry md5s are the real ones
    server = FakeServer({"https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz": payload})
    with pytest.raises(ChecksumError, match="c99cafc152244af753f735de768cd75f"):
        load_dataset("cifar10", "test", data_dir=tmp_path / "nowhere", downloader=server)


def test_cache_root_honours_xdg_cache_home(monkeypatch, isolated):
    from rdcompress.data import download as download_module

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert download_module.cache_root() == isolated / ".cache" / "rdcompress"
    monkeypatch.setenv("XDG_CACHE_HOME", str(isolated / "xdg"))
    assert download_module.cache_root() == isolated / "xdg" / "rdcompress"


@pytest.fixture
def local_server():
    """An HTTP server on the loopback interface (no network) serving {path: bytes}."""
    import http.server
    import threading

    files = {"/a.gz": b"payload-a"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pooch_fetcher_reads_and_fails_over(local_server):
    """The default fetcher (pooch): bytes from a URL; a 404 is an OSError, so the next mirror
    is tried and the first good payload is returned."""
    from rdcompress.data import download as download_module

    assert download_module.http_download(f"{local_server}/a.gz", 5) == b"payload-a"
    with pytest.raises(OSError):
        download_module.http_download(f"{local_server}/missing.gz", 5)
    payload = download_module._fetch_first(
        [f"{local_server}/missing.gz", f"{local_server}/a.gz"], download_module.http_download,
        lambda data: None)
    assert payload == b"payload-a"
