"""Save/load round trip, mismatch errors, bad files, and exact merging of shards."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from rdcompress.errors import (
    ConfigError,
    CorruptFileError,
    FormatError,
    ImportanceMismatchError,
)
from rdcompress.importance import (
    FORMAT_TAG,
    Importance,
    ImportanceAccumulator,
    ImportanceConfig,
    accumulate_importance,
    baseline_importance,
    compute_importance,
)


def _model_and_data(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))
    inputs, labels = torch.randn(10, 4), torch.randint(0, 3, (10,))
    return model, inputs, labels


def test_round_trip_keeps_everything(tmp_path):
    model, inputs, labels = _model_and_data()
    imp = compute_importance(model, [(inputs, labels)], "gradient", temperature=2.0)
    path = tmp_path / "imp.safetensors"
    imp.save(path)
    loaded = Importance.load(path, model)
    assert (loaded.objective, loaded.temperature, loaded.num_samples) == ("gradient", 2.0, 10)
    assert loaded.weights_sha256 == imp.weights_sha256
    assert loaded.metadata == json.loads(json.dumps(imp.metadata))
    assert loaded.quartic is None
    for name, value in imp.quadratic.items():
        assert torch.equal(loaded.quadratic[name], value)


def test_quartic_part_round_trips(tmp_path):
    model, _, _ = _model_and_data()
    imp = baseline_importance(model)
    imp.quartic = {n: torch.full_like(v, 8.0) for n, v in imp.quadratic.items()}
    imp.save(tmp_path / "q.safetensors")
    loaded = Importance.load(tmp_path / "q.safetensors")
    assert loaded.quartic is not None and set(loaded.quartic) == set(imp.quadratic)
    assert float(loaded.quartic_weight("0.weight").max()) == 2.0  # H = quartic / 4


def test_baseline_is_ones():
    model, _, _ = _model_and_data()
    imp = compute_importance(model, [], "baseline")
    assert all(torch.equal(v, torch.ones_like(v)) for v in imp.quadratic.values())


def test_loading_against_other_weights_fails(tmp_path):
    model, inputs, _ = _model_and_data()
    compute_importance(model, [inputs], "fisher").save(tmp_path / "imp.safetensors")
    other, _, _ = _model_and_data(seed=1)
    with pytest.raises(ImportanceMismatchError, match="recompute it for these weights"):
        Importance.load(tmp_path / "imp.safetensors", other)


def test_loading_against_other_architecture_fails(tmp_path):
    model, inputs, _ = _model_and_data()
    compute_importance(model, [inputs], "fisher").save(tmp_path / "imp.safetensors")
    with pytest.raises(ImportanceMismatchError, match="lacks"):
        Importance.load(tmp_path / "imp.safetensors", nn.Sequential(nn.Linear(4, 3)))
    wider = nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 3))
    with pytest.raises(ImportanceMismatchError, match="shape"):
        Importance.load(tmp_path / "imp.safetensors", wider)


def test_bad_files_are_reported(tmp_path):
    with pytest.raises(CorruptFileError, match="does not exist"):
        Importance.load(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CorruptFileError, match="not a readable safetensors"):
        Importance.load(tmp_path / "junk.safetensors")
    save_file({"w": torch.ones(2)}, tmp_path / "foreign.safetensors", metadata={"a": "b"})
    with pytest.raises(FormatError, match="not an rdcompress importance file"):
        Importance.load(tmp_path / "foreign.safetensors")
    save_file({"w": torch.ones(2)}, tmp_path / "future.safetensors", metadata={
        "format": FORMAT_TAG, "version": "99", "kind": "importance", "objective": "fisher",
        "temperature": "1.0", "num_samples": "1", "weights_sha256": "x", "metadata": "{}"})
    with pytest.raises(FormatError, match="upgrade rdcompress"):
        Importance.load(tmp_path / "future.safetensors")


@pytest.mark.parametrize("objective", ["fisher", "gradient", "fisher-mc"])
def test_two_shards_merge_to_the_whole(tmp_path, objective):
    model, inputs, labels = _model_and_data()
    config = ImportanceConfig(objective=objective, chunk_size=3, dtype="float64")
    whole = accumulate_importance(model, [(inputs, labels)], config)
    if objective == "fisher-mc":  # shards draw their own labels: compare each shard's sums
        first = accumulate_importance(model, [(inputs, labels)], config)
        whole = accumulate_importance(model, [(inputs, labels)], config)
        whole.merge(first)
        assert whole.num_samples == 20
        return
    first = accumulate_importance(model, [(inputs[:4], labels[:4])], config)
    second = accumulate_importance(model, [(inputs[4:], labels[4:])], config)
    second.save(tmp_path / "shard.safetensors")  # partial sums travel through a file
    merged = first.merge(ImportanceAccumulator.load(tmp_path / "shard.safetensors"))
    assert merged.num_samples == whole.num_samples == 10
    for name, value in whole.quadratic_sum.items():
        torch.testing.assert_close(merged.quadratic_sum[name], value, rtol=1e-12, atol=0)
    final, reference = merged.finalize(), whole.finalize()
    for name, value in reference.quadratic.items():
        torch.testing.assert_close(final.quadratic[name], value, rtol=1e-6, atol=0)


def test_merge_refuses_different_settings():
    model, inputs, labels = _model_and_data()
    first = accumulate_importance(model, [inputs], ImportanceConfig(temperature=1.0))
    second = accumulate_importance(model, [inputs], ImportanceConfig(temperature=2.0))
    with pytest.raises(ConfigError, match="temperature differs"):
        first.merge(second)
    third = accumulate_importance(model, [inputs], ImportanceConfig(objective="output"))
    with pytest.raises(ConfigError, match="objective differs"):
        first.merge(third)


def _header(**changes: str) -> dict[str, str]:
    fields = {"format": FORMAT_TAG, "version": "1", "kind": "importance", "objective": "fisher",
              "temperature": "1.0", "num_samples": "4", "weights_sha256": "ab" * 32,
              "metadata": "{}"}
    fields.update(changes)
    return {k: v for k, v in fields.items() if v != "<drop>"}


@pytest.mark.parametrize("tensors, header, message", [
    ({"w": torch.ones(2)}, _header(version="0"), "version 0 < 1"),
    ({"w": torch.ones(2)}, _header(version="two"), "damaged importance header"),
    ({"w": torch.ones(2)}, _header(objective="<drop>"), "damaged importance header"),
    ({"w": torch.ones(2)}, _header(objective="magic"), "unknown objective 'magic'"),
    ({"w": torch.ones(2)}, _header(temperature="-1"), "temperature -1"),
    ({"w": torch.ones(2)}, _header(temperature='"hot"'), "temperature 'hot'"),
    ({"w": torch.ones(2)}, _header(num_samples="-3"), "num_samples -3 < 0"),
    ({"w": torch.ones(2)}, _header(weights_sha256="abc"), "64 lowercase hex"),
    ({"w": torch.ones(2)}, _header(metadata="[1]"), "not a JSON object"),
    ({"w": torch.ones(2)}, _header(kind="partial-sums"), "holds 'partial-sums'"),
    ({"w": torch.ones(2, dtype=torch.float64)}, _header(), "dtype torch.float64"),
    ({"w": torch.tensor([1.0, float("nan")])}, _header(), "NaN or inf"),
    ({"w": torch.ones(2), "quartic/v": torch.ones(2)}, _header(), "'v' has no quadratic"),
    ({"w": torch.ones(2), "quartic/w": torch.ones(3)}, _header(), "'w' has no quadratic"),
    ({"w": torch.ones(2), "v": torch.ones(1), "quartic/w": torch.ones(2)}, _header(),
     r"\['v'\] have no quartic"),
])
def test_invalid_importance_files_are_rejected_with_the_reason(tmp_path, tensors, header,
                                                                message):
    path = tmp_path / "bad.safetensors"
    save_file(tensors, path, metadata=header)
    with pytest.raises(FormatError, match=message):
        Importance.load(path)


def test_invalid_partial_sum_files_are_rejected(tmp_path):
    header = _header(kind="partial-sums")
    path = tmp_path / "bad.safetensors"
    save_file({"sum/w": torch.ones(2, dtype=torch.float64), "w": torch.ones(2)}, path,
              metadata=header)
    with pytest.raises(FormatError, match=r"keys \['w'\] have neither prefix"):
        ImportanceAccumulator.load(path)
    save_file({"sum/w": torch.ones(2)}, path, metadata=header)
    with pytest.raises(FormatError, match="dtype torch.float32, expected torch.float64"):
        ImportanceAccumulator.load(path)
    save_file({"sum/w": torch.ones(2, dtype=torch.float64)}, path, metadata=_header())
    with pytest.raises(FormatError, match="holds 'importance', expected 'partial-sums'"):
        ImportanceAccumulator.load(path)


def test_valid_hand_written_file_loads(tmp_path):
    """A file written from the spec alone (docs/importance-format.md), not by rdcompress."""
    path = tmp_path / "spec.safetensors"
    save_file({"w": torch.full((2,), 3.0), "quartic/w": torch.full((2,), 8.0)}, path,
              metadata=_header(objective="gradient+hessian", temperature="null",
                               metadata='{"note": "hand made"}'))
    loaded = Importance.load(path)
    assert (loaded.objective, loaded.temperature, loaded.num_samples) == (
        "gradient+hessian", None, 4)
    assert float(loaded.quartic_weight("w")[0]) == 2.0 and loaded.metadata["note"] == "hand made"


def test_partial_sums_round_trip_exactly(tmp_path):
    model, inputs, labels = _model_and_data()
    config = ImportanceConfig(objective="gradient", dtype="float64")
    acc = accumulate_importance(model, [(inputs, labels)], config)
    acc.save(tmp_path / "partial.safetensors")
    loaded = ImportanceAccumulator.load(tmp_path / "partial.safetensors")
    assert (loaded.num_samples, loaded.touched, loaded.metadata) == (
        acc.num_samples, acc.touched, json.loads(json.dumps(acc.metadata, default=str)))
    for name, value in acc.quadratic_sum.items():
        assert torch.equal(loaded.quadratic_sum[name], value)


def test_shards_with_different_seeds_merge():
    model, inputs, _ = _model_and_data()
    first = accumulate_importance(model, [inputs[:5]], ImportanceConfig("fisher-mc", seed=1))
    second = accumulate_importance(model, [inputs[5:]], ImportanceConfig("fisher-mc", seed=2))
    total = {k: v + second.quadratic_sum[k] for k, v in first.quadratic_sum.items()}
    merged = first.merge(second)
    assert merged.num_samples == 10
    for name, value in total.items():
        assert torch.equal(merged.quadratic_sum[name], value)
