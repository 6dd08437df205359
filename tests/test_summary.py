"""summary.md says what a reader wants first: a verdict, the noise level, a temperature hint."""

from __future__ import annotations

from rdcompress.summary import sample_size_note, temperature_hint, verdict


def _row(method, objective, value, ratio, accuracy):
    return {"method": method, "objective": objective, "value": value, "setting": f"v={value}",
            "file_ratio": ratio, "accuracy": accuracy, "kl": 0.01}


ROWS = [_row("prune", "baseline", 0.1, 9.0, 0.95), _row("prune", "fisher", 0.1, 9.0, 0.94),
        _row("prune", "baseline", 0.3, 3.0, 0.975), _row("prune", "fisher", 0.3, 3.0, 0.97),
        _row("quantize", "fisher", 4, 12.0, 0.972), _row("quantize", "fisher", 2, 20.0, 0.90)]


def test_verdict_names_the_smallest_file_within_one_point():
    lines = verdict(ROWS, {"accuracy": 0.98})
    assert lines[0].startswith("**Verdict:** the smallest file within 1 point")
    assert "quantize (fisher, v=4): 12.0× smaller" in lines[0] and "-0.80 points" in lines[0]
    assert any(line.startswith("- prune (baseline, v=0.3): 3.0×") for line in lines)
    assert "no compressed model is within" in verdict(ROWS, {"accuracy": 0.999})[0]


def test_noise_and_temperature_notes():
    assert "one sample is 0.28 accuracy points" in sample_size_note({"num_samples": 359})[0]
    hint = temperature_hint(ROWS, {"temperature": 1.0})
    assert hint and "2/2 settings" in hint[0] and "--temperature 5" in hint[0]
    assert temperature_hint(ROWS, {"temperature": 5.0}) == []
    better = [dict(r, accuracy=r["accuracy"] + 0.02) if r["objective"] == "fisher" else r
              for r in ROWS]
    assert temperature_hint(better, {"temperature": 1.0}) == []
