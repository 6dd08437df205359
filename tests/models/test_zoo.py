import json

import pytest
import torch
from safetensors.torch import save_file

from rdcompress.errors import CheckpointError, ModelError, NonFiniteError
from rdcompress.models import (
    ZOO,
    Preprocessing,
    build,
    build_from_spec,
    load_model,
    load_state,
    load_weights,
    parameter_count,
)

INPUT_SHAPES = {"digits": (2, 1, 8, 8), "mnist": (2, 1, 28, 28), "cifar10": (2, 3, 32, 32)}


@pytest.mark.parametrize("name", [n for n in ZOO if n != "vgg-cifar"] + ["vgg-cifar-small"])
def test_every_zoo_model_runs_on_its_preprocessed_input(name):
    kwargs = {"width": 8} if name == "vgg-cifar-small" else {}
    name = name.replace("-small", "")
    entry = ZOO[name]
    model = build(name, **kwargs).eval()
    x = entry.preprocessing(torch.rand(INPUT_SHAPES[entry.dataset]))
    assert model(x).shape == (2, 10)


def test_known_sizes():
    assert parameter_count(build("mnist-mlp")) == 784 * 256 + 256 + 256 * 256 + 256 + 2570
    assert parameter_count(build("lenet-300-100")) == 266_610
    assert parameter_count(build("resnet20")) == 269_722  # He et al.: 0.27M
    assert parameter_count(build("lenet5")) == 61_706


def test_resnet_option_a_shortcut_has_no_parameters():
    names = [n for n, _ in build("resnet20").named_parameters()]
    assert not any("shortcut" in n for n in names)


def test_spec_round_trip_and_factory():
    spec = {"factory": "rdcompress.models.mlp:MLP",
            "kwargs": {"in_features": 4, "hidden": [3], "num_classes": 2}}
    with pytest.raises(ModelError, match="never imports or runs code named by a file"):
        build_from_spec(spec)  # a factory runs only when the caller trusts it
    model = build_from_spec(spec, trust_code=True)
    assert model(torch.rand(5, 4)).shape == (5, 2)
    with pytest.raises(ModelError, match="package.module:function"):
        build_from_spec({"factory": "no_colon_here"}, trust_code=True)
    with pytest.raises(ModelError, match="cannot import"):
        build_from_spec({"factory": "not_a_module_xyz:f"}, trust_code=True)
    with pytest.raises(ModelError, match="unknown zoo model 'nope'.*digits-mlp"):
        build("nope")


def _tiny():
    return build("digits-mlp")


@pytest.mark.parametrize("layout", ["plain", "wrapped", "module-prefix", "safetensors"])
def test_checkpoint_layouts_load_exactly(tmp_path, layout):
    source = _tiny()
    state = source.state_dict()
    path = tmp_path / "ckpt.pth"
    if layout == "plain":
        torch.save(state, path)
    elif layout == "wrapped":
        torch.save({"state_dict": state, "best_prec1": 1.0}, path)
    elif layout == "module-prefix":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    target = load_weights(_tiny(), load_state(path))
    for key, value in state.items():
        assert torch.equal(target.state_dict()[key], value)


def test_bad_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state(tmp_path / "missing.pth")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_state(empty)
    foreign = tmp_path / "foreign.pth"
    foreign.write_bytes(b"this is a text file, not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_state(foreign)
    good = tmp_path / "good.safetensors"
    save_file({"a": torch.ones(100)}, good)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match="truncated"):
        load_state(truncated)
    not_state = tmp_path / "list.pth"
    torch.save([1, 2, 3], not_state)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        load_state(not_state)


def test_mismatched_weights_name_what_differs():
    state = build("mnist-mlp").state_dict()
    with pytest.raises(CheckpointError, match="shape mismatch.*layers.1.weight"):
        load_weights(build("digits-mlp"), state)
    state = _tiny().state_dict()
    state["extra.weight"] = torch.ones(1)
    with pytest.raises(CheckpointError, match="unexpected 1"):
        load_weights(_tiny(), state)


def test_nan_weights_are_refused():
    state = _tiny().state_dict()
    state["layers.1.weight"][0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="layers.1.weight"):
        load_weights(_tiny(), state)


def test_missing_num_batches_tracked_is_tolerated():
    model = build("resnet20")
    state = {k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    load_weights(build("resnet20"), state)


def test_load_model_forms(tmp_path):
    model = _tiny()
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    with pytest.raises(ModelError, match="--arch"):
        load_model(weights)  # no sidecar
    loaded = load_model(weights, arch="digits-mlp")
    assert loaded.spec == {"zoo": "digits-mlp", "kwargs": {}}
    assert loaded.dataset == "digits" and not loaded.module.training
    sidecar = weights.with_suffix(".json")
    sidecar.write_text(json.dumps({"format": "rdcompress-model", "spec": loaded.spec,
                                   "dataset": "digits", "preprocessing": {"flatten": True}}))
    via_sidecar = load_model(weights)
    assert via_sidecar.preprocessing == Preprocessing(flatten=True)
    by_name = load_model("digits-mlp", weights=weights)
    assert torch.equal(by_name.module.layers[1].weight, model.layers[1].weight)
    sidecar.write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(weights)


def test_preprocessing_resize_and_normalize():
    prep = Preprocessing(mean=(0.5,), std=(0.25,), resize=(4, 4))
    x = torch.full((1, 1, 2, 2), 0.75)
    out = prep(x)
    assert out.shape == (1, 1, 4, 4)
    assert torch.allclose(out, torch.ones_like(out))
    assert Preprocessing.from_dict(prep.to_dict()) == prep
