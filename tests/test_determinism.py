"""Same inputs and seed -> the same bytes, for every file a small end-to-end job writes.

The job (train, importance, partial sums, compress, decompress) runs twice, each time in a fresh
interpreter with its own PYTHONHASHSEED (and so its own Rust HashMap seeds inside safetensors),
and every file of the two runs is compared byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

JOB = r"""
import sys
from rdcompress.cli.main import main

out = sys.argv[1]
steps = [
    ["train", "--model", "digits-mlp", "--epochs", "1", "--limit", "120",
     "-o", f"{out}/w.safetensors"],
    ["importance", f"{out}/w.safetensors", "--objective", "fisher-mc", "--limit", "48",
     "--seed", "3", "-o", f"{out}/imp.safetensors"],
    ["compress", f"{out}/w.safetensors", "--importance", f"{out}/imp.safetensors",
     "--method", "quantize", "--clusters", "4", "-o", f"{out}/m.rdz", "--json", f"{out}/c.json"],
    ["decompress", f"{out}/m.rdz", "-o", f"{out}/d.safetensors"],
]
for step in steps:
    code = main(step)
    if code != 0:
        sys.exit(f"step {step[0]} failed with exit code {code}")

from rdcompress.data import load_dataset
from rdcompress.importance import ImportanceConfig, accumulate_importance
from rdcompress.models import load_model
from rdcompress.pipeline import make_loader

loaded = load_model(f"{out}/w.safetensors")
batches = make_loader(load_dataset("digits", split="train"), loaded.preprocessing, 16, limit=16)
accumulate_importance(loaded.module, batches, ImportanceConfig("gradient")).save(
    f"{out}/partial.safetensors")
"""

def _run_job(directory: Path, hash_seed: str) -> subprocess.Popen:
    directory.mkdir()
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1",
           "RDCOMPRESS_PROGRESS": "0", "RDCOMPRESS_NO_DOWNLOAD": "1"}
    return subprocess.Popen([sys.executable, "-c", JOB, str(directory)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("determinism")
    runs = [(base / "a", _run_job(base / "a", "0")), (base / "b", _run_job(base / "b", "4242"))]
    for directory, process in runs:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"job in {directory} failed:\n{stdout}\n{stderr}"
    return base / "a", base / "b"


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def test_every_written_file_is_byte_identical_across_fresh_processes(two_runs):
    first, second = (_files(d) for d in two_runs)
    assert set(first) == set(second) == {
        "w.safetensors", "w.json", "imp.safetensors", "m.rdz", "c.json", "d.safetensors",
        "partial.safetensors"}
    differing = sorted(name for name in first if first[name] != second[name])
    assert differing == [], f"these files differ between two identical runs: {differing}"


def test_partial_sum_files_carry_a_checksum(two_runs, tmp_path):
    from rdcompress.errors import ChecksumError
    from rdcompress.importance.accumulator import ImportanceAccumulator

    source = two_runs[0] / "partial.safetensors"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "file has no checksum" warning
        ImportanceAccumulator.load(source)
    damaged = tmp_path / "partial.safetensors"
    data = bytearray(source.read_bytes())
    data[-3] ^= 0x10  # one bit of the last tensor's data
    damaged.write_bytes(bytes(data))
    with pytest.raises(ChecksumError):
        ImportanceAccumulator.load(damaged)


def test_written_importance_file_carries_a_checksum_and_loads_without_warning(two_runs):
    from rdcompress.importance import Importance
    from rdcompress.importance.result import CHECKSUM_KEY

    path = two_runs[0] / "imp.safetensors"
    assert f'"{CHECKSUM_KEY}":"'.encode() in path.read_bytes()[:4096]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = Importance.load(path)
    assert loaded.objective == "fisher-mc" and loaded.num_samples == 48
