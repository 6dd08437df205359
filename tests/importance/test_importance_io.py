"""Save/load round trip, mismatch errors, bad files, and exact merging of shards."""

from __future__ import annotations

import hashlib
import json
import struct
import warnings

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from safetensors.torch import save_file
from torch import nn

from rdcompress.codec.safetensors_out import safetensors_bytes
from rdcompress.errors import (
    ChecksumError,
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
from rdcompress.importance.result import header


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
    ({}, _header(), "holds no tensors"),
    ({"w": torch.ones(2)}, _header(version="+1"), "version '\\+1' is not a decimal"),
    ({"w": torch.ones(2)}, _header(version="9" * 5000), "is not a decimal integer"),
    ({"w": torch.ones(2)}, _header(num_samples="1e3"), "num_samples '1e3' is not a decimal"),
    ({"w": torch.ones(2)}, _header(num_samples=" 5"), "num_samples ' 5' is not a decimal"),
    ({"w": torch.ones(2)}, _header(num_samples="\u0663"), "is not a decimal integer"),
    ({"w": torch.ones(2)}, _header(num_samples="9" * 5000), "is not a decimal integer"),
    ({"w": torch.ones(2)}, _header(num_samples="0"), "num_samples 0 with objective 'fisher'"),
    ({"w": torch.ones(2)}, _header(temperature="9" * 4000), "temperature 9999"),
    ({"w": torch.ones(2)}, _header(temperature="NaN"), "temperature nan"),
    ({"w": torch.ones(2)}, _header(temperature="[" * 100_000), "nested too deeply"),
    ({"w": torch.ones(2)}, _header(metadata='{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"),
     "nested too deeply"),
    ({"w": torch.ones(2)}, _header(metadata='{"a": ' + "9" * 5000 + "}"),
     "damaged importance header: invalid JSON"),
    ({"w": torch.ones(2)}, _header(metadata='{"a": 1, "a": 2}'), r"names \['a'\] more than once"),
    ({"w": torch.ones(2)}, _header(metadata='{"config": []}'), "'config' is not a JSON object"),
    ({"w": torch.ones(2)}, _header(metadata='{"frozen": "w"}'), "'frozen' is not a list"),
    ({"w": torch.ones(2)}, _header(metadata='{"excluded_frozen": 1}'), "not true or false"),
    ({"w": torch.ones(2)}, _header(extra="1"), r"unknown metadata keys \['extra'\]"),
    ({"w": torch.ones(2)}, _header(num_samples="<drop>"), "key 'num_samples' is missing"),
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
    sums = {"sum/w": torch.ones(2, dtype=torch.float64)}
    for metadata, message in [('{"touched": 3}', "'touched' is not a list"),
                              ('{"mu": -1}', "'mu' -1 is not a finite number >= 0"),
                              ('{"mu": "0.5"}', "'mu' '0.5' is not a finite number")]:
        save_file(sums, path, metadata={**header, "metadata": metadata})
        with pytest.raises(FormatError, match=message):
            ImportanceAccumulator.load(path)
    save_file({}, path, metadata=header)
    with pytest.raises(FormatError, match="holds no tensors"):
        ImportanceAccumulator.load(path)
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


# -- integrity: the checksum, the container checks, determinism ---------------------------------

def _u64(value: int) -> bytes:
    return struct.pack("<Q", value)


def _field(text: str) -> bytes:
    return _u64(len(text.encode())) + text.encode()


def test_checksum_is_sha256_of_the_documented_byte_sequence(tmp_path):
    """Recomputes content_sha256 from docs/importance-format.md ("Integrity") by hand."""
    imp = Importance("fisher", {"b": torch.tensor([1.5, 2.0]), "a": torch.tensor([[3.0]])},
                     None, 1.0, 4, "ab" * 32, {"note": "é"})
    imp.save(tmp_path / "imp.safetensors")
    data = (tmp_path / "imp.safetensors").read_bytes()
    meta = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])["__metadata__"]
    stored = meta.pop("content_sha256")
    expected = hashlib.sha256(_u64(len(meta)))
    for key in sorted(meta):
        expected.update(_field(key) + _field(meta[key]))
    expected.update(_u64(2))
    expected.update(_field("a") + _field("F32") + _u64(2) + _u64(1) + _u64(1) + _u64(4)
                    + struct.pack("<f", 3.0))
    expected.update(_field("b") + _field("F32") + _u64(1) + _u64(2) + _u64(8)
                    + struct.pack("<2f", 1.5, 2.0))
    assert stored == expected.hexdigest()


def _saved(tmp_path) -> tuple[bytes, int]:
    model, inputs, labels = _model_and_data()
    compute_importance(model, [(inputs, labels)], "fisher").save(tmp_path / "imp.safetensors")
    data = (tmp_path / "imp.safetensors").read_bytes()
    return data, 8 + int.from_bytes(data[:8], "little")


def test_a_flipped_bit_in_the_data_is_refused(tmp_path):
    data, start = _saved(tmp_path)
    damaged = bytearray(data)
    damaged[start + 5] ^= 0x01  # a low mantissa bit: still a finite, plausible number
    (tmp_path / "bad.safetensors").write_bytes(bytes(damaged))
    with pytest.raises(ChecksumError, match="is damaged: its content_sha256 is"):
        Importance.load(tmp_path / "bad.safetensors")


def test_an_edited_header_value_is_refused(tmp_path):
    data, start = _saved(tmp_path)
    edited = data.replace(b'"num_samples":"10"', b'"num_samples":"90"')
    assert edited != data and len(edited) == len(data)
    (tmp_path / "bad.safetensors").write_bytes(edited)
    with pytest.raises(ChecksumError, match="recompute it"):
        Importance.load(tmp_path / "bad.safetensors")


def test_a_file_without_checksum_loads_with_a_warning(tmp_path):
    model, inputs, labels = _model_and_data()
    imp = compute_importance(model, [(inputs, labels)], "fisher")
    save_file(imp.quadratic, tmp_path / "old.safetensors", metadata=header(
        "importance", imp.objective, imp.temperature, imp.num_samples, imp.weights_sha256,
        imp.metadata))  # what rdcompress wrote before checksums
    with pytest.warns(UserWarning, match="has no content_sha256") as record:
        loaded = Importance.load(tmp_path / "old.safetensors", model)
    assert record[0].filename == __file__  # stacklevel points at the caller of load
    assert all(torch.equal(loaded.quadratic[n], v) for n, v in imp.quadratic.items())
    loaded.save(tmp_path / "new.safetensors")  # re-saving adds the checksum
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Importance.load(tmp_path / "new.safetensors", model)


def test_container_damage_is_reported_before_parsing(tmp_path):
    path = tmp_path / "bad.safetensors"
    data, _ = _saved(tmp_path)
    for content, message in [
        (b"\x01\x02\x03", "3 bytes, fewer than the 8-byte header length"),
        ((2 ** 60).to_bytes(8, "little") + data[8:], f"header length {2 ** 60} exceeds"),
        ((len(data) - 7).to_bytes(8, "little") + data[8:], "exceeds the"),
        (data[:-1], "not a readable safetensors file"),
    ]:
        path.write_bytes(content)
        with pytest.raises(CorruptFileError, match=message):
            Importance.load(path)


def test_duplicate_tensor_names_in_the_header_are_refused(tmp_path):
    entry = '"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
    head = ('{"__metadata__":' + json.dumps(_header()) + "," + entry + "," + entry + "}").encode()
    (tmp_path / "dup.safetensors").write_bytes(
        len(head).to_bytes(8, "little") + head + b"\0\0\x80\x3f")
    with pytest.raises(CorruptFileError, match=r"names \['w'\] more than once"):
        Importance.load(tmp_path / "dup.safetensors")


def test_paths_that_are_not_files_are_refused(tmp_path):
    with pytest.raises(CorruptFileError, match="is a directory"):
        Importance.load(tmp_path)
    with pytest.raises(CorruptFileError, match="not a regular file"):
        Importance.load("/dev/null")


def test_missing_parameters_are_refused_against_the_model(tmp_path):
    model, inputs, labels = _model_and_data()
    imp = compute_importance(model, [(inputs, labels)], "fisher")
    del imp.quadratic["2.bias"]
    imp.save(tmp_path / "imp.safetensors")
    Importance.load(tmp_path / "imp.safetensors")  # without a model nothing says it is missing
    with pytest.raises(ImportanceMismatchError, match=r"no importance for the model's "
                                                      r"parameters \['2.bias'\] \(1 of 4\)"):
        Importance.load(tmp_path / "imp.safetensors", model)


def test_excluded_frozen_parameters_may_be_absent(tmp_path):
    model, inputs, labels = _model_and_data()
    model[0].weight.requires_grad_(False)
    imp = compute_importance(model, [(inputs, labels)], "fisher", include_frozen=False)
    assert "0.weight" not in imp.quadratic
    imp.save(tmp_path / "imp.safetensors")
    assert set(Importance.load(tmp_path / "imp.safetensors", model).quadratic) == {
        "0.bias", "2.weight", "2.bias"}


def test_saving_twice_gives_the_same_bytes_with_sorted_metadata(tmp_path):
    model, inputs, labels = _model_and_data()
    imp = compute_importance(model, [(inputs, labels)], "gradient")
    imp.save(tmp_path / "a.safetensors")
    imp.save(tmp_path / "b.safetensors")
    data = (tmp_path / "a.safetensors").read_bytes()
    assert data == (tmp_path / "b.safetensors").read_bytes()
    keys = list(json.loads(data[8:8 + int.from_bytes(data[:8], "little")])["__metadata__"])
    assert keys == sorted(keys) and "content_sha256" in keys


def test_canonical_writer_agrees_with_the_safetensors_library():
    tensors = {"b": torch.randn(3, 2), "a": torch.randn(5), "c": torch.tensor(2.0)}
    assert safetensors_bytes(tensors, {"format": "x"}) == st_save(tensors, {"format": "x"})
    mixed = {**tensors, "i": torch.arange(3, dtype=torch.int16), "d": torch.randn(2).double(),
             "m": torch.tensor([True, False]), "e": torch.zeros(0, 3),
             "h": torch.randn(3).bfloat16()}
    data = safetensors_bytes(mixed, {"z": "1", "a": "é"})
    loaded = st_load(data)
    assert loaded.keys() == mixed.keys()
    assert all(loaded[k].dtype == v.dtype and torch.equal(loaded[k], v) for k, v in mixed.items())
    with pytest.raises(ConfigError, match="must map str to str"):
        safetensors_bytes(tensors, {"n": 1})  # type: ignore[dict-item]
