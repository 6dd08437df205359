"""Atomic writes: the target keeps its mode, killed writes leave recognisable and cleaned
temporary files, and a bad output path is a ConfigError naming it."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from rdcompress import _io
from rdcompress._io import (
    TEMP_SUFFIX,
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    new_file_mode,
    stale_temp_files,
    temp_name,
)
from rdcompress.errors import ConfigError


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o664, 0o600])
def test_replacing_a_file_keeps_its_mode(tmp_path, mode):
    target = tmp_path / "w.safetensors"
    target.write_bytes(b"old")
    os.chmod(target, mode)
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == mode  # mkstemp's 0600 used to replace it


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_a_new_file_gets_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "new.json", "{}\n")
        with open(tmp_path / "plain.json", "w") as handle:  # what an ordinary write gives
            handle.write("{}\n")
        assert new_file_mode() == 0o666 & ~umask
    finally:
        os.umask(old)
    assert _mode(tmp_path / "new.json") == _mode(tmp_path / "plain.json") == 0o666 & ~umask


def test_temporary_names_follow_the_documented_pattern(tmp_path):
    name = temp_name(tmp_path / "m.rdz", pid=4242)
    assert name.startswith(".m.rdz.4242.") and name.endswith(TEMP_SUFFIX)
    assert len(name) == len(".m.rdz.4242.") + 8 + len(TEMP_SUFFIX)


def test_a_killed_write_leaves_a_recognisable_file_that_the_next_write_removes(tmp_path):
    target = tmp_path / "model.rdz"
    target.write_bytes(b"original")
    script = textwrap.dedent(f"""
        import os
        from rdcompress._io import atomic_write
        with atomic_write({str(target)!r}) as handle:
            handle.write(b"half a file")
            handle.flush()
            os._exit(9)  # killed mid-write: no cleanup runs
    """)
    assert subprocess.run([sys.executable, "-c", script]).returncode == 9
    assert target.read_bytes() == b"original"  # never half-written
    left = [p for p in tmp_path.iterdir() if p != target]
    assert len(left) == 1 and left[0].name.startswith(".model.rdz.")
    assert left[0].name.endswith(TEMP_SUFFIX)
    assert stale_temp_files(target) == left
    atomic_write_bytes(target, b"next")
    assert sorted(tmp_path.iterdir()) == [target] and target.read_bytes() == b"next"


def test_only_stale_temporaries_of_the_same_target_are_removed(tmp_path):
    target = tmp_path / "a.json"
    dead = tmp_path / temp_name(target, pid=_dead_pid())
    live = tmp_path / temp_name(target, pid=os.getppid())  # a running process's write
    mine = tmp_path / temp_name(target)  # another write of this process (a thread)
    other_target = tmp_path / temp_name(tmp_path / "b.json", pid=_dead_pid())
    lookalike = tmp_path / ".a.json.123.nothex!!.rdcompress-tmp"
    for path in (dead, live, mine, other_target, lookalike):
        path.write_text("x")
    atomic_write_text(target, "{}")
    assert not dead.exists()
    assert live.exists() and mine.exists() and other_target.exists() and lookalike.exists()


def test_an_error_inside_the_block_leaves_nothing(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError, match="boom"), atomic_write(target) as handle:
        handle.write(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_bad_output_paths_are_config_errors(tmp_path):
    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError, match="'.*dir' is a directory; give a file name inside it"):
        atomic_write_bytes(tmp_path / "dir", b"x")
    (tmp_path / "file").write_text("keep me")
    with pytest.raises(ConfigError, match="'.*file' is a file, not a directory"):
        atomic_write_bytes(tmp_path / "file" / "sub" / "out.rdz", b"x")
    assert (tmp_path / "file").read_text() == "keep me"
    atomic_write_bytes(tmp_path / "new" / "deeper" / "out.rdz", b"x")  # parents are made
    assert (tmp_path / "new" / "deeper" / "out.rdz").read_bytes() == b"x"


def test_an_os_refusal_while_creating_is_a_config_error(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(_io.os, "open", refuse)
    with pytest.raises(ConfigError, match="cannot write .*out.rdz.*no permission"):
        atomic_write_bytes(tmp_path / "out.rdz", b"x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_directory_is_refused_before_writing(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o555)
    try:
        with pytest.raises(ConfigError, match="no permission to write in"):
            atomic_write_bytes(locked / "out.rdz", b"x")
    finally:
        os.chmod(locked, 0o755)


def test_state_hash_takes_zero_dim_tensors_and_keeps_the_others():
    import hashlib

    import torch

    from rdcompress._io import state_dict_sha256

    weight = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    expected = hashlib.sha256()
    expected.update(b"w|torch.float32|(2, 3)|")
    expected.update(weight.numpy().tobytes())
    assert state_dict_sha256({"w": weight}) == expected.hexdigest()  # the format is unchanged
    steps = torch.tensor(7)  # 0-d, as BatchNorm's num_batches_tracked
    assert state_dict_sha256({"n": steps}) != state_dict_sha256({"n": torch.tensor(8)})
