"""The sweep end to end on digits: real files, tables, plots, summary, and resuming."""

import csv
import json

import pytest
import torch

import rdcompress
from rdcompress.cli.main import main
from rdcompress.errors import ConfigError
from rdcompress.sweep import SweepConfig


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    argv = ["sweep", "--objectives", "baseline,fisher,gradient+hessian", "--kept", "0.3",
            "--clusters", "4", "--epochs", "5", "--calibration-samples", "128", "-o", str(out)]
    assert main(argv) == 0
    return out, argv


def test_sweep_writes_every_output(sweep_dir):
    out, _ = sweep_dir
    for name in ("results.csv", "results.json", "summary.md", "prune.png", "quantize.png",
                 "kl-vs-bits.png", "config.json", "digits-mlp.safetensors", "frontier.png",
                 "frontier.csv", "reference.json"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 2 * 3
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 6
    for row in rows:
        # the file ratio is measured on the real file, everything counted
        rdz = out / "models" / f"{row['method']}-{row['objective'].replace('+', '-')}-" \
                               f"{row['value']:g}.rdz"
        assert row["file_bytes"] == rdz.stat().st_size
        assert 0 <= row["accuracy"] <= 1 and row["kl"] >= 0
    summary = (out / "summary.md").read_text()
    assert "## prune" in summary and "## At equal file size" in summary


def test_sweep_files_load_back_as_models(sweep_dir):
    out, _ = sweep_dir
    model = rdcompress.load(out / "models" / "quantize-fisher-4.rdz")
    distinct = set(model.layers[1].weight.detach().flatten().tolist())
    assert len(distinct) <= 4  # k = 4 centroids per layer
    assert model(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_sweep_resumes_without_redoing_runs(sweep_dir):
    out, argv = sweep_dir
    log = out / "results.jsonl"
    before = log.read_text()
    assert main(argv) == 0
    assert log.read_text() == before  # nothing recomputed
    assert main([*argv[:2], "baseline,fisher,gradient+hessian,gradient", *argv[3:]]) == 0
    lines = log.read_text().splitlines()
    assert len(lines) == 6 + 2 and all(json.loads(x)["objective"] == "gradient"
                                       for x in lines[6:])


def test_sweep_file_describes_itself(sweep_dir):
    from rdcompress._io import state_dict_sha256
    from rdcompress.models import load_model
    from rdcompress.results import ROW_FIELDS

    out, _ = sweep_dir
    document = json.loads((out / "sweep.json").read_text())
    assert document["rows"] == json.loads((out / "results.json").read_text())
    assert document["reference"] == json.loads((out / "reference.json").read_text())
    assert document["config"]["methods"] == ["prune", "quantize"]
    assert all(document["columns"][name] for name in [*ROW_FIELDS, "config"])  # documented
    module = load_model(document["model"]["source"]).module
    assert document["model"]["weights_sha256"] == state_dict_sha256(
        dict(module.named_parameters()))
    prune_row = next(r for r in document["rows"] if r["method"] == "prune")
    assert prune_row["config"] == {"method": "prune", "kept_fraction": 0.3, "scope": "layer",
                                   "structured": False, "dim": 0}


def test_sweep_config_validation():
    with pytest.raises(ConfigError, match="kept_fraction=1.5 is outside"):
        SweepConfig(grid={"prune": (1.5,)})
    with pytest.raises(ConfigError, match="objective 'magic'"):
        SweepConfig(objectives=("magic",))


def test_resuming_with_other_settings_is_refused(sweep_dir, capsys):
    out, argv = sweep_dir
    before = (out / "results.jsonl").read_text()
    assert main([*argv, "--temperature", "3"]) == 2
    assert "temperature: 1.0 -> 3.0" in capsys.readouterr().err
    assert (out / "results.jsonl").read_text() == before


def test_vary_temperature_runs_one_sweep_per_value(tmp_path):
    argv = ["sweep", "--methods", "prune", "--objectives", "baseline,gradient", "--kept",
            "0.2,0.3", "--epochs", "3", "--calibration-samples", "64", "-o", str(tmp_path),
            "--vary", "temperature=1,4"]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "vary-temperature.json").read_text())
    assert len(rows) == 2 * 2 * 2 and {r["varied"] for r in rows} == {1.0, 4.0}
    assert all(r["temperature"] == r["varied"] for r in rows)
    for name in ("vary-temperature.csv", "vary-temperature.png", "vary-temperature.md",
                 "T=1/results.csv", "T=4/results.csv", "digits-mlp.safetensors"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "T=4" / "digits-mlp.safetensors").exists()  # trained once
    by_t = {(r["setting"], r["objective"], r["varied"]): r for r in rows}
    # the baseline ignores T; the gradient importance depends on it
    assert by_t[("kept=0.2", "baseline", 1.0)]["kl"] == by_t[("kept=0.2", "baseline", 4.0)]["kl"]
    assert by_t[("kept=0.2", "gradient", 1.0)]["kl"] != by_t[("kept=0.2", "gradient", 4.0)]["kl"]


@pytest.mark.parametrize("text", ["temp=1,2", "temperature", "temperature=a", "temperature=0,1",
                                  "mu=-1", "temperature=2,2"])
def test_vary_rejects_bad_specs(text):
    from rdcompress.vary import parse_vary

    with pytest.raises(ConfigError, match="--vary"):
        parse_vary(text)


@pytest.mark.parametrize("metric", ["weighted", "whiten"])
def test_lowrank_sweep_writes_real_factorized_files(sweep_dir, tmp_path, metric):
    trained = sweep_dir[0] / "digits-mlp.safetensors"  # reuse the fixture's model: no training
    argv = ["sweep", "--model", str(trained), "--methods", "lowrank", "--objectives",
            "baseline,fisher", "--ranks", "0.3", "--calibration-samples", "64",
            "--lowrank-metric", metric, "-o", str(tmp_path)]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["setting"] for r in rows] == ["ratio=0.3", "ratio=0.3"]
    for row in rows:
        path = tmp_path / "models" / f"lowrank-{row['objective']}-0.3.rdz"
        assert row["file_bytes"] == path.stat().st_size
        manifest = rdcompress.load(path, return_manifest=True)[1]
        assert manifest["method"] == "lowrank" and manifest["composites"]
        expected = "svd" if row["objective"] == "baseline" and metric == "weighted" else metric
        assert manifest["settings"]["metric"] == expected
        assert row["file_ratio"] > 1.5 and 0 <= row["accuracy"] <= 1


def test_greedy_methods_run_once_per_setting(sweep_dir, tmp_path):
    trained = sweep_dir[0] / "digits-mlp.safetensors"
    argv = ["sweep", "--model", str(trained), "--methods", "greedy-prune,greedy-quantize",
            "--objectives", "baseline,fisher", "--greedy-p", "0.3", "--greedy-k", "2",
            "--calibration-samples", "128", "-o", str(tmp_path)]
    assert main(argv) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [(r["method"], r["objective"], r["setting"]) for r in rows] == [
        ("greedy-prune", "loss", "p=0.3"), ("greedy-quantize", "loss", "k=2")]
    pruned = rows[0]
    # about (1 − α) + α·p of the weights survive
    assert 0.3 < pruned["paper_ratio"] < 0.45
    for row in rows:
        path = tmp_path / "models" / f"{row['method']}-loss-{row['value']:g}.rdz"
        assert row["file_bytes"] == path.stat().st_size
        assert rdcompress.load(path, return_manifest=True)[1]["method"] == row["method"]


def test_eval_limit_spreads_over_a_class_sorted_split():
    from rdcompress.data import load_dataset
    from rdcompress.sweep import evenly_spaced

    test = load_dataset("digits", split="test")
    order = torch.argsort(test.labels, stable=True)
    by_class = test.subset(order.numpy(), "test")  # sorted by class, like an image folder
    subset = evenly_spaced(by_class, 50)
    assert len(subset) == 50
    assert set(subset.labels.tolist()) == set(range(10))  # the first 50 would hold 1-2 classes
    assert evenly_spaced(by_class, 10_000) is by_class


def test_combined_methods_store_both_stages(sweep_dir, tmp_path):
    trained = sweep_dir[0] / "digits-mlp.safetensors"
    argv = ["sweep", "--model", str(trained), "--methods",
            "prune,prune+quantize,lowrank,lowrank+quantize", "--objectives", "baseline",
            "--kept", "0.3", "--ranks", "0.5", "--combine-clusters", "8",
            "--calibration-samples", "64", "-o", str(tmp_path)]
    assert main(argv) == 0
    rows = {r["method"]: r for r in json.loads((tmp_path / "results.json").read_text())}
    assert rows["prune+quantize"]["setting"] == "kept=0.3,k=8"
    assert rows["lowrank+quantize"]["setting"] == "ratio=0.5,k=8"
    # quantizing the survivors / the factors shrinks the same file further
    assert rows["prune+quantize"]["file_bytes"] < rows["prune"]["file_bytes"]
    assert rows["lowrank+quantize"]["file_bytes"] < rows["lowrank"]["file_bytes"]
    pq = rdcompress.load(tmp_path / "models" / "prune-quantize-baseline-0.3.rdz")
    kept = pq.layers[1].weight.detach().flatten()
    assert len(set(kept[kept != 0].tolist())) <= 8
    model, manifest = rdcompress.load(tmp_path / "models" / "lowrank-quantize-baseline-0.5.rdz",
                                      return_manifest=True)
    assert manifest["settings"]["storage"] == "quantized" and manifest["settings"]["k"] == 8
    with open(tmp_path / "frontier.csv") as handle:
        front = list(csv.DictReader(handle))
    assert {r["method"] for r in front} <= set(rows) and front
