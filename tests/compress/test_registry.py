"""The method registry keeps its promise: every registered method passes one conformance test,
a method registered at run time works through compress(), the CLI and a sweep without editing
any other file, and no module outside a method's own file names its string."""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import rdcompress
from rdcompress.cli.main import main
from rdcompress.codec import RawTensor
from rdcompress.compress import compress, config_from_dict, load, specs
from rdcompress.compress._layers import LayerResult, LayerStats, layer_distortion
from rdcompress.compress.registry import (
    Flag,
    MethodSpec,
    SweepAxis,
    get,
    per_layer,
    register,
    unregister,
)
from rdcompress.errors import ConfigError
from rdcompress.sweep import SweepConfig, run_sweep


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def _loader() -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=generator)
    return DataLoader(TensorDataset(x, torch.randint(0, 4, (64,), generator=generator)),
                      batch_size=32)


@pytest.mark.parametrize("spec", specs(), ids=lambda spec: spec.name)
def test_every_registered_method_conforms(spec, tmp_path):
    config = spec.build(**spec.example)
    assert config.method == spec.name and get(config.method) is spec
    assert config_from_dict(json.loads(json.dumps(config.to_dict()))) == config  # JSON-safe
    net = _net()
    needs = spec.needs_of(config)
    calibration = _loader() if needs & {"calibration", "input_moments"} else None
    compressed = compress(net, config, calibration=calibration, model_spec=None)
    assert compressed.manifest["method"] == spec.name
    assert config_from_dict(compressed.manifest["settings"]) == config  # recorded whole
    summary = compressed.save(tmp_path / "m.rdz")
    assert summary.file_bytes == (tmp_path / "m.rdz").stat().st_size
    module = load(tmp_path / "m.rdz", model=_net())
    expected = compressed.state_dict()
    assert all(torch.equal(module.state_dict()[n], t) for n, t in expected.items())
    assert spec.describe(config)  # a setting label for result rows
    if spec.sweep is not None:  # the sweep can build it from its axis alone
        fields = {**spec.sweep_defaults, spec.sweep.field: spec.sweep.values[0]}
        assert spec.build(**spec.adapt(fields, "baseline")).method == spec.name


def test_needs_are_checked_before_any_work():
    greedy = get("greedy-prune")
    with pytest.raises(ConfigError, match="needs calibration"):
        compress(_net(), greedy.build(**greedy.example))


def test_unknown_configs_and_names_are_refused():
    with pytest.raises(ConfigError, match="no registered method"):
        compress(_net(), {"method": "prune"})
    with pytest.raises(ConfigError, match="'nope' is unknown"):
        config_from_dict({"method": "nope"})
    with pytest.raises(ConfigError, match="already registered"):
        register(MethodSpec(name="prune", config=ToyConfig, handler=handle_toy, label="x",
                            example={}))


# ------------------------------------------------------------------ a method added at run time

@dataclass
class ToyConfig:
    """Round every weight to a multiple of ``step`` (stored raw: a toy, not a compressor)."""

    step: float = 0.5

    method: ClassVar[str] = "toy-round"

    def __post_init__(self) -> None:
        if not self.step > 0:
            raise ConfigError(f"step={self.step!r} must be > 0")

    def to_dict(self) -> dict:
        return {"method": self.method, **asdict(self)}


def _round_layers(layers, config: ToyConfig) -> dict[str, LayerResult]:
    results = {}
    for layer in layers:
        weight = (layer.weight / config.step).round() * config.step
        distortion, zero = layer_distortion(layer, weight)
        stats = LayerStats(layer.name, tuple(weight.shape), weight.numel(), weight.numel(), None,
                           distortion, distortion / zero if zero else 0.0, None)
        results[layer.name] = LayerResult(RawTensor(layer.name, weight), weight, stats)
    return results


handle_toy = per_layer(_round_layers)


@pytest.fixture
def toy():
    spec = register(MethodSpec(
        name="toy-round", config=ToyConfig, handler=handle_toy, label="toy rounding",
        example={"step": 0.25}, flags=(Flag("--toy-step", "step", float, help="grid step"),),
        sweep=SweepAxis("step", (0.5,), "--toy-steps", float, "toy: grid steps"),
        style={"color": "tab:pink"}))
    yield spec
    unregister("toy-round")


def test_a_method_registered_at_run_time_works_everywhere(toy, tmp_path, capsys):
    net = _net()
    compressed = compress(net, ToyConfig(step=0.25))
    weight = compressed.state_dict()["0.weight"]
    assert torch.equal(weight, (net[0].weight.detach() / 0.25).round() * 0.25)
    test_every_registered_method_conforms(toy, tmp_path)

    # the command line: --method choices and the method's own flag come from the registry
    trained = tmp_path / "digits.safetensors"
    assert main(["train", "--model", "digits-mlp", "--epochs", "1", "-o", str(trained)]) == 0
    out = tmp_path / "toy.rdz"
    assert main(["compress", str(trained), "--method", "toy-round", "--toy-step", "0.125",
                 "-o", str(out)]) == 0
    manifest = load(out, return_manifest=True)[1]
    assert manifest["method"] == "toy-round" and manifest["settings"]["step"] == 0.125
    assert main(["compress", str(trained), "--method", "prune", "--toy-step", "0.1",
                 "-o", str(tmp_path / "x.rdz")]) == 2
    assert "--toy-step is for toy rounding" in capsys.readouterr().err

    # a sweep over it: rows, files and plots
    result = run_sweep(SweepConfig(model=str(trained), methods=("toy-round",),
                                   objectives=("baseline",), grid={"toy-round": (0.25, 1.0)},
                                   output_dir=str(tmp_path / "sweep"), eval_limit=60))
    assert [row["setting"] for row in result.rows] == ["step=0.25", "step=1"]
    assert result.rows[0]["config"] == {"method": "toy-round", "step": 0.25}
    assert (tmp_path / "sweep" / "toy-round.png").is_file()


# ------------------------------------------------------------- method names stay in their files

# Strings equal to a method name that are another concept, in the file that owns it: greedy's
# modes ("prune"/"quantize" of GreedyConfig.mode; the width experiment's modes), the linear-model
# theory's compressors ("prune"), the .rdz format's composite op "lowrank".
OTHER_CONCEPTS = {"greedy/config.py", "greedy/width.py", "theory/limit.py", "theory/plots.py",
                  "compress/compose.py"}


def _method_strings(path: Path, names: set[str]) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value in names and id(node) not in docstrings]


def test_no_module_outside_a_method_names_its_string():
    from rdcompress.compress.registry import _MODULES

    root = Path(rdcompress.__file__).parent
    own = {spec.name: {_MODULES[spec.name], spec.config.__module__} for spec in specs()}
    owners = {name: modules for name, modules in own.items()
              if any(m.startswith("rdcompress.") for m in modules)}  # not the toy's test file
    found = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        module = "rdcompress." + relative.removesuffix(".py").replace("/", ".")
        if relative in OTHER_CONCEPTS:
            continue
        for line, name in _method_strings(path, set(owners)):
            if module not in owners[name]:
                found.append(f"{relative}:{line}: {name!r}")
    assert found == []  # counted: 0 (a method's own files: its config's and its registration's)


def test_a_method_chooses_its_coder_unless_the_caller_does():
    from rdcompress.compress import AllocateConfig, QuantizeConfig

    assert compress(_net(), AllocateConfig(target_bytes=2000)).coder == "ctx"
    assert compress(_net(), AllocateConfig(target_bytes=2000), coder="ans").coder == "ans"
    assert compress(_net(), QuantizeConfig(clusters=4)).coder == "ans"
