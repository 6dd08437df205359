"""Progress: bars on a terminal, a throttled heartbeat line in logs and CI, silence on request."""

from __future__ import annotations

import time

import rdcompress.progress as progress_module
from rdcompress.progress import progress, progress_mode


def test_logs_get_a_throttled_heartbeat(monkeypatch, capsys):
    monkeypatch.delenv("RDCOMPRESS_PROGRESS")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(progress_module, "HEARTBEAT_SECONDS", 0.05)
    assert progress_mode() == "heartbeat"
    bar = progress(range(8), desc="sweep", unit="run")
    for _ in bar:
        time.sleep(0.03)
        bar.set_postfix(loss=1.0)  # a postfix change alone prints nothing
    lines = capsys.readouterr().err.splitlines()
    assert 1 <= len(lines) <= 5, lines
    assert all(line.startswith("sweep: ") and "/8 run (" in line for line in lines), lines


def test_zero_silences_and_one_forces_bars(monkeypatch, capsys):
    monkeypatch.setenv("RDCOMPRESS_PROGRESS", "0")
    assert list(progress(range(3), desc="x")) == [0, 1, 2]
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RDCOMPRESS_PROGRESS", "1")
    assert progress_mode() == "bar"
