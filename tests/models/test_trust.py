"""Loading a file never runs code: crafted .rdz manifests and sidecars on every entry point.

The hostile architecture is a module in tmp_path whose import writes ``imported`` and whose
call writes ``called`` beside it; a second one is ``os:system`` with a command that writes a
marker. Every API function and every CLI command is handed the crafted files; no marker may
appear, and the refusal must name the code and the ways forward. With ``trust_code=True`` /
``--trust-code`` (or ``--arch``/``model=``, the caller naming the code) the factory IS used.
"""

from __future__ import annotations

import itertools
import json
import pickle
import sys

import pytest
import torch
from safetensors.torch import save_file

import rdcompress
from rdcompress.cli.main import main
from rdcompress.compress import QuantizeConfig, compress
from rdcompress.errors import CheckpointError, ModelError
from rdcompress.models import build, build_from_spec, load_model, load_state

_counter = itertools.count()


class Hostile:
    """A crafted model spec, the files that carry it, and the markers its code would write."""

    def __init__(self, tmp_path, monkeypatch, kind="module"):
        self.dir = tmp_path
        self.module_name = f"rdc_hostile_{next(_counter)}_{tmp_path.name[:20].replace('-', '_')}"
        code = (
            "import pathlib\n"
            f"pathlib.Path({str(tmp_path / 'imported')!r}).write_text('imported')\n"
            "def make(**kwargs):\n"
            f"    pathlib.Path({str(tmp_path / 'called')!r}).write_text('called')\n"
            "    from rdcompress.models import build\n"
            "    return build('digits-mlp')\n"
        )
        (tmp_path / f"{self.module_name}.py").write_text(code)
        monkeypatch.syspath_prepend(str(tmp_path))
        if kind == "module":
            self.factory = f"{self.module_name}:make"
            self.spec = {"factory": self.factory, "kwargs": {}}
        else:  # the example: a shell command through os.system
            self.factory = "os:system"
            self.spec = {"factory": "os:system",
                         "kwargs": {"command": f"touch {tmp_path / 'called'}"}}
        net = build("digits-mlp").eval()
        metadata = {"dataset": "digits", "preprocessing": {"flatten": True}}
        self.rdz = tmp_path / "hostile.rdz"
        compress(net, QuantizeConfig(clusters=4), model_spec=self.spec,
                 model_metadata=metadata).save(self.rdz)
        self.weights = tmp_path / "hostile.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, self.weights)
        self.weights.with_suffix(".json").write_text(json.dumps(
            {"format": "rdcompress-model", "spec": self.spec, **metadata}))

    def ran(self) -> bool:
        return ((self.dir / "imported").exists() or (self.dir / "called").exists()
                or self.module_name in sys.modules)


@pytest.fixture(params=["module", "os.system"])
def hostile(request, tmp_path, monkeypatch):
    yield Hostile(tmp_path, monkeypatch, request.param)


def _assert_refused(message: str, hostile: Hostile) -> None:
    assert hostile.factory in message
    assert "never imports or runs code named by a file" in message
    assert "model=" in message and "--arch" in message
    assert "trust_code=True" in message and "--trust-code" in message


def test_api_entry_points_refuse_the_files_code(hostile):
    calls = [
        lambda: rdcompress.load(hostile.rdz),
        lambda: rdcompress.load(hostile.rdz, factorized=True, return_manifest=True),
        lambda: rdcompress.open_model(hostile.rdz),
        lambda: load_model(hostile.weights),  # the sidecar names the factory
        lambda: build_from_spec(hostile.spec),
    ]
    for call in calls:
        with pytest.raises(ModelError) as info:
            call()
        _assert_refused(str(info.value), hostile)
    assert not hostile.ran()


def test_every_cli_command_refuses_the_files_code(hostile, capsys):
    out = hostile.dir / "out"
    refused = [
        ["evaluate", str(hostile.rdz), "--limit", "8"],
        ["evaluate", str(hostile.weights), "--limit", "8"],
        ["evaluate", "digits-mlp", "--reference", str(hostile.rdz), "--limit", "8"],
        ["compress", str(hostile.weights), "--method", "quantize", "--clusters", "4",
         "-o", f"{out}.rdz"],
        ["compress", str(hostile.rdz), "--method", "quantize", "--clusters", "4",
         "-o", f"{out}2.rdz"],
        ["importance", str(hostile.weights), "--objective", "baseline", "-o",
         f"{out}.safetensors"],
        ["importance", str(hostile.rdz), "--objective", "baseline", "-o",
         f"{out}2.safetensors"],
        ["sweep", "--model", str(hostile.weights), "-o", str(out / "sweep")],
        ["sweep", "--model", str(hostile.rdz), "-o", str(out / "sweep-rdz")],
    ]
    for argv in refused:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"rdcompress {argv[0]}: error:"), argv
        _assert_refused(err, hostile)
    # commands that only read the file's bytes build no model and run nothing
    assert main(["info", str(hostile.rdz), "--manifest"]) == 0
    assert hostile.factory in capsys.readouterr().out  # the spec is shown, as data
    assert main(["decompress", str(hostile.rdz), "-o", f"{out}-weights.safetensors"]) == 0
    assert not hostile.ran()
    assert not (hostile.dir / "out.rdz").exists() and not (hostile.dir / "out.safetensors").exists()


def test_trust_code_runs_the_factory_in_the_api(tmp_path, monkeypatch):
    hostile = Hostile(tmp_path, monkeypatch)
    module = rdcompress.load(hostile.rdz, trust_code=True)
    assert (tmp_path / "called").exists()  # the factory built the architecture
    assert module.state_dict().keys() == build("digits-mlp").state_dict().keys()
    loaded = load_model(hostile.weights, trust_code=True)
    assert loaded.spec == hostile.spec and loaded.dataset == "digits"


def test_trust_code_flag_runs_the_factory_on_the_command_line(tmp_path, monkeypatch, capsys):
    hostile = Hostile(tmp_path, monkeypatch)
    assert main(["evaluate", str(hostile.rdz), "--trust-code", "--limit", "16"]) == 0
    assert (tmp_path / "called").exists()
    assert "accuracy" in capsys.readouterr().out


def test_os_system_runs_only_when_trusted(tmp_path, monkeypatch):
    """The opt-in really is the switch: the very spec that was refused runs when trusted."""
    hostile = Hostile(tmp_path, monkeypatch, kind="os.system")
    with pytest.raises(ModelError):
        load_model(hostile.weights)
    assert not (tmp_path / "called").exists()
    with pytest.raises(ModelError, match="returned int, not an nn.Module"):
        load_model(hostile.weights, trust_code=True)
    assert (tmp_path / "called").exists()


def test_the_caller_naming_the_architecture_needs_no_trust(tmp_path, monkeypatch):
    hostile = Hostile(tmp_path, monkeypatch)
    reference = rdcompress.load(hostile.rdz, model=build("digits-mlp"))
    assert not hostile.ran()  # model= : the file's spec is not even looked at
    by_arch = rdcompress.open_model(hostile.rdz, arch=hostile.factory)  # the caller typed it
    assert (tmp_path / "called").exists()
    for name, value in reference.state_dict().items():
        assert torch.equal(by_arch.module.state_dict()[name], value)
    zoo_arch = load_model(hostile.weights, arch="digits-mlp")
    assert zoo_arch.spec == {"zoo": "digits-mlp", "kwargs": {}}


def test_manifest_kwargs_the_zoo_factory_does_not_take(tmp_path):
    path = tmp_path / "kwargs.rdz"
    spec = {"zoo": "digits-mlp", "kwargs": {"bogus": 1}}
    compress(build("digits-mlp"), QuantizeConfig(clusters=2), model_spec=spec).save(path)
    with pytest.raises(ModelError, match=r"does not take the arguments \['bogus'\].*num_classes"):
        rdcompress.load(path)


@pytest.mark.parametrize("kwargs", [{"hidden": [10**7, 10**7]}, {"num_classes": 10**15}])
def test_manifest_kwargs_cannot_make_a_huge_model(tmp_path, kwargs):
    """Zoo specs are built on the meta device and checked against the file's tensors first."""
    path = tmp_path / "huge.rdz"
    spec = {"zoo": "digits-mlp", "kwargs": kwargs}
    compress(build("digits-mlp"), QuantizeConfig(clusters=2), model_spec=spec).save(path)
    with pytest.raises(ModelError, match="does not fit the architecture"):
        rdcompress.load(path)


@pytest.mark.parametrize(("spec", "message"), [
    ("digits-mlp", "must be a JSON object, got str"),
    ({"zoo": ["digits-mlp"]}, "zoo name must be a string"),
    ({"zoo": "digits-mlp", "kwargs": [1]}, "'kwargs' must be an object"),
    ({"zoo": "digits-mlp", "factory": "os:system"}, "exactly one"),
    ({"factory": 3}, "must be a 'package.module:function' string"),
])
def test_malformed_specs_are_model_errors(tmp_path, spec, message):
    path = tmp_path / "bad.rdz"
    compress(build("digits-mlp"), QuantizeConfig(clusters=2), model_spec=spec).save(path)
    with pytest.raises(ModelError, match=message):
        rdcompress.load(path, trust_code=True)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


@pytest.mark.parametrize("kind", ["png", "pickle", "raw-pickle"])
def test_unreadable_files_never_suggest_unsafe_loading(tmp_path, kind):
    path = tmp_path / "weights.pt"
    if kind == "png":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    elif kind == "pickle":
        torch.save({"layer.weight": torch.ones(2), "hook": _Evil()}, path)
    else:
        path.write_bytes(pickle.dumps({"hook": _Evil()}))
    with pytest.raises(CheckpointError) as info:
        load_state(path)
    message = str(info.value)
    assert "weights_only" not in message and "trusted source" not in message
    assert "never loads pickled objects" in message and "safetensors" in message
    if kind == "png":
        assert "it is a PNG image, not a checkpoint" in message
    if kind == "pickle":
        assert "refers to the Python object 'posix.system'" in message
