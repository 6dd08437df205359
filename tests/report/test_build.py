"""The report's data from a real (tiny) sweep, the HTML file, and the command."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from rdcompress._io import sha256_file
from rdcompress.cli.main import main
from rdcompress.errors import ConfigError, CorruptFileError
from rdcompress.frontier import METRICS
from rdcompress.report import ReportConfig, build_document
from rdcompress.report.build import plotly_dash
from rdcompress.report.collect import collect, read_sweep
from rdcompress.report.page import render, script_json


def test_every_row_is_a_model_with_its_file(tiny_sweep):
    sweep = read_sweep(tiny_sweep)
    collected = collect([sweep])
    assert len(collected.models) == len(sweep.rows) == 4
    for model, row in zip(collected.models, sweep.rows, strict=True):
        path = tiny_sweep / "models" / model["file"]
        assert model["sha256"] == sha256_file(path)
        assert model["file_bytes"] == row["file_bytes"] == path.stat().st_size
        layers = model["layers"]
        # every byte of the file is a tensor's or the header's
        assert sum(layers["bytes"]) + model["header_bytes"] == model["file_bytes"]
        assert sum(layers["share"]) == pytest.approx(1 - model["header_bytes"]
                                                     / model["file_bytes"], abs=1e-3)
        shares = [s for s in layers["distortion_share"] if s is not None]
        assert sum(shares) == pytest.approx(1.0, abs=1e-3)


def test_fronts_hold_exactly_the_undominated_models(tiny_sweep):
    models = collect([read_sweep(tiny_sweep)]).models
    fronts = collect([read_sweep(tiny_sweep)]).fronts
    for metric, higher in METRICS.items():
        for series, ids in fronts[metric].items():
            mine = [m for m in models if m["series"] == series and m[metric] is not None]
            better = (lambda a, b: a > b) if higher else (lambda a, b: a < b)
            undominated = {m["id"] for m in mine if not any(
                o["file_ratio"] >= m["file_ratio"] and better(o[metric], m[metric])
                for o in mine)}
            assert set(ids) == undominated, (metric, series)


def test_document_evaluates_every_model_of_a_small_sweep(tiny_sweep):
    document = build_document(ReportConfig([str(tiny_sweep)], gallery=5))
    sweep = document["sweeps"][0]
    assert sweep["num_samples"] == 120 and sweep["weights_match"] is True
    assert len(sweep["classes"]) == 10
    assert set(document["evaluation"]) == {m["id"] for m in document["models"]}
    for model in document["models"]:
        evaluation = document["evaluation"][model["id"]]
        assert sum(map(sum, evaluation["confusion"])) == 120
        agreement = sum(evaluation["confusion"][i][i] for i in range(10)) / 120
        assert agreement == pytest.approx(model["agreement"])  # as the sweep measured it
        assert len(evaluation["changed"]) == min(5, evaluation["changed_count"])
        for sample in evaluation["changed"]:
            assert document["thumbnails"][0][sample["index"]].startswith("data:image/png")
        assert "path" not in model


def test_evaluation_is_capped_and_optional(tiny_sweep):
    capped = build_document(ReportConfig([str(tiny_sweep)], evaluate=2))
    assert len(capped["evaluation"]) == 2 and "2 of 4" in capped["evaluation_note"]
    none = build_document(ReportConfig([str(tiny_sweep)], evaluate=0))
    assert none["evaluation"] == {} and none["thumbnails"] == {}


def test_a_missing_file_leaves_its_model_on_the_plane(tiny_sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(tiny_sweep, copy)
    victim = sorted((copy / "models").iterdir())[0]
    victim.unlink()
    with pytest.warns(UserWarning, match="missing"):
        document = build_document(ReportConfig([str(copy)]))
    lost = [m for m in document["models"] if m["file"] == victim.name]
    assert lost[0]["layers"] is None and lost[0]["id"] not in document["evaluation"]
    assert len(document["evaluation"]) == 3


def test_html_is_self_contained_and_script_safe(tiny_report):
    text = tiny_report.read_text()
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=[\"']?(https?:)?//", text)
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                     text, re.S)
    assert data and len(json.loads(data.group(1))["models"]) == 4
    hostile = {"title": "</script><script>alert(1)</script>", "models": []}
    assert "</script>" not in script_json(hostile)
    assert json.loads(script_json(hostile)) == hostile


def test_title_and_labels_are_escaped(tiny_sweep):
    document = build_document(ReportConfig([str(tiny_sweep)], evaluate=0,
                                           labels=["<b>x</b>"], title="a <i>b</i>"))
    page = render(document, "/* plotly */")
    assert "<title>a &lt;i&gt;b&lt;/i&gt;</title>" in page
    assert "<b>x</b>" not in page.split('id="report-data"')[0]


@pytest.mark.parametrize("kwargs, message", [
    ({"runs": []}, "at least one RUN"),
    ({"runs": ["a", "b"], "labels": ["x"]}, "one label per RUN"),
    ({"runs": ["a"], "evaluate": -1}, "evaluate=-1"),
    ({"runs": ["a"], "gallery": 1.5}, "gallery=1.5"),
    ({"runs": ["a"], "output": "r.pdf"}, "must end in .html"),
])
def test_config_errors_say_what_to_fix(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        ReportConfig(**kwargs)


def test_bad_runs_are_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="no sweep.json"):
        read_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        read_sweep(tmp_path)
    (tmp_path / "sweep.json").write_text("[]")
    with pytest.raises(CorruptFileError, match="'rows' list"):
        read_sweep(tmp_path)


def test_plotly_dash_from_matplotlib_styles():
    assert plotly_dash("--") == "dash" and plotly_dash(":") == "dot"
    assert plotly_dash((0, (5, 1, 1, 1))) == "10px,2px,2px,2px"
    assert plotly_dash(None) == "solid"


def test_command_writes_the_file(tiny_sweep, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(tiny_sweep), "-o", str(out), "--evaluate", "0"]) == 0
    assert out.is_file() and "4 models, 0 evaluated" in capsys.readouterr().out
    assert main(["report", str(tmp_path), "-o", str(out)]) == 2
    assert "no sweep.json there" in capsys.readouterr().err


def test_a_single_file_is_measured_as_the_sweep_measured_it(tiny_sweep, tmp_path):
    rows = {m["file"]: m for m in collect([read_sweep(tiny_sweep)]).models}
    file = sorted((tiny_sweep / "models").iterdir())[-1]
    config = ReportConfig([str(file)], original=str(tiny_sweep / "digits-mlp.safetensors"),
                          eval_limit=120, gallery=3)
    document = build_document(config)
    (model,) = document["models"]
    expected = rows[file.name]
    assert (model["method"], model["setting"], model["file_bytes"]) == (
        expected["method"], expected["setting"], expected["file_bytes"])
    for metric in ("accuracy", "kl", "cross_entropy", "agreement", "file_ratio"):
        assert model[metric] == pytest.approx(expected[metric], rel=1e-9), metric
    assert document["sweeps"][0]["weights_match"] is True
    assert set(document["evaluation"]) == {model["id"]}
    with pytest.raises(ConfigError, match="--original"):
        build_document(ReportConfig([str(file)]))
    assert main(["report", str(file), "-o", str(tmp_path / "r.html"), "--original",
                 str(tiny_sweep / "digits-mlp.safetensors"), "--eval-limit", "50"]) == 0


def test_layer_strings_are_stored_once_and_map_back(tiny_sweep):
    from rdcompress.report.build import STRING_COLUMNS

    before = collect([read_sweep(tiny_sweep)]).models
    document = build_document(ReportConfig([str(tiny_sweep)], evaluate=0))
    strings = document["strings"]
    assert len(strings) == len(set(strings))
    for old, new in zip(before, document["models"], strict=True):
        for column in STRING_COLUMNS:
            assert [strings[i] for i in new["layers"][column]] == old["layers"][column]


def test_a_moved_sweep_finds_its_original_beside_it(tiny_sweep, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(tiny_sweep, moved)
    document = json.loads((moved / "sweep.json").read_text())
    document["model"]["source"] = "runs/elsewhere/digits-mlp.safetensors"  # as written from
    (moved / "sweep.json").write_text(json.dumps(document))                 # another directory
    built = build_document(ReportConfig([str(moved)], evaluate=1))
    assert len(built["evaluation"]) == 1 and built["sweeps"][0]["weights_match"] is True
