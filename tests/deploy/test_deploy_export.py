"""Export targets: ONNX verified under onnxruntime against compress.load; safetensors; CLI."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helpers
from deploy_helpers import NETS, example_input, make_rdz  # noqa: E402

from rdcompress.cli.main import main  # noqa: E402
from rdcompress.compress import QuantizeConfig, compress, load  # noqa: E402
from rdcompress.deploy.export import TARGETS, ExportOptions, export  # noqa: E402
from rdcompress.errors import ConfigError  # noqa: E402

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from rdcompress.deploy.export.to_onnx import run_onnxruntime  # noqa: E402

SHAPE = (1, 6, 6)


def _initializers(path: Path) -> dict[str, tuple[int, tuple[int, ...]]]:
    """{name: (onnx data type, dims)} of the file's initializers."""
    graph = onnx.load(str(path)).graph
    return {init.name: (init.data_type, tuple(init.dims)) for init in graph.initializer}


@pytest.mark.parametrize("config_name", ["quantize-k16", "quantize-k40", "prune",
                                         "prune-quantize", "lowrank-quantized"])
@pytest.mark.parametrize("net_name", list(NETS))
def test_onnx_matches_dense_load_under_onnxruntime(tmp_path, net_name, config_name):
    _, path = make_rdz(tmp_path, net_name, config_name)
    out = tmp_path / "model.onnx"
    result = export(path, "onnx", out, ExportOptions(model=NETS[net_name](), input_shape=SHAPE))
    x = example_input(batch=9)  # the batch axis is dynamic (exported with batch 1)
    expected = load(path, model=NETS[net_name]())(x)
    got = run_onnxruntime(out, x)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-5
    assert torch.equal(got.argmax(1), expected.argmax(1))
    # the compressed weights are gone as float initializers and came back as subgraphs
    initializers = _initializers(out)
    assert result.details["compressed"]
    for name in result.details["compressed"]:
        assert name not in initializers, name


def test_onnx_keeps_indices_as_bytes(tmp_path):
    """k=40: a uint8 index per weight; k=16: two per byte; k=4: four; no float copy of the
    weight."""
    for config_name, name, dims in (("quantize-k40", "1.indices", (24 * 36,)),
                                    ("quantize-k16", "1.indices4", (24 * 36 // 2,)),
                                    ("quantize-k4", "1.indices2", (24 * 36 // 4,))):
        _, path = make_rdz(tmp_path, "mlp", config_name)
        out = tmp_path / f"{config_name}.onnx"
        export(path, "onnx", out, ExportOptions(model=NETS["mlp"](), input_shape=SHAPE))
        initializers = _initializers(out)
        assert initializers[f"1.weight::{name.split('.')[1]}"] == (onnx.TensorProto.UINT8,
                                                                   dims)
        assert initializers["1.weight::codebook"][0] == onnx.TensorProto.FLOAT
        assert "1.weight" not in initializers


def test_dense_onnx_is_the_plain_graph(tmp_path):
    _, path = make_rdz(tmp_path, "mlp", "quantize-k4")
    out = tmp_path / "dense.onnx"
    result = export(path, "onnx", out, ExportOptions(model=NETS["mlp"](), input_shape=SHAPE,
                                                     compressed=False))
    assert result.details["compressed"] == []
    assert _initializers(out)["1.weight"] == (onnx.TensorProto.FLOAT, (24, 36))
    x = example_input()
    assert torch.allclose(run_onnxruntime(out, x), load(path, model=NETS["mlp"]())(x),
                          rtol=0, atol=1e-5)


def test_safetensors_target_is_the_decoded_state(tmp_path):
    from safetensors.torch import load_file

    _, path = make_rdz(tmp_path, "conv", "prune-quantize")
    result = export(path, "safetensors", tmp_path / "w.safetensors")
    state = load(path, model=NETS["conv"]()).state_dict()
    written = load_file(str(result.path))
    assert set(written) == set(state)
    assert all(torch.equal(written[name], state[name]) for name in state)


def test_targets_and_errors(tmp_path):
    assert set(TARGETS) == {"onnx", "safetensors"}
    _, path = make_rdz(tmp_path, "mlp", "quantize-k4")
    with pytest.raises(ConfigError, match="format 'coreml' is unknown"):
        export(path, "coreml", tmp_path / "x")
    with pytest.raises(ConfigError, match="input shape of this model is unknown"):
        export(path, "onnx", tmp_path / "x.onnx", ExportOptions(model=NETS["mlp"]()))
    with pytest.raises(ConfigError, match="opset=17"):
        ExportOptions(opset=17)


def test_cli_export_zoo_model(tmp_path, capsys):
    """The zoo model's dataset gives the input shape; the CLI reports both file sizes."""
    from rdcompress.models import build

    torch.manual_seed(0)
    path = tmp_path / "digits.rdz"
    compress(build("digits-mlp"), QuantizeConfig(clusters=8), None,
             model_spec={"zoo": "digits-mlp", "kwargs": {}}).save(path)
    assert main(["export", str(path), "--format", "onnx"]) == 0
    out = tmp_path / "digits.onnx"
    assert "weights kept compressed" in capsys.readouterr().out
    x = torch.randn(4, 1, 8, 8)
    assert torch.allclose(run_onnxruntime(out, x), load(path)(x), rtol=0, atol=1e-5)
    assert main(["export", str(path), "--format", "onnx", "-o", str(path)]) == 2


def test_onnx_palettizes_other_entry_kinds(tmp_path):
    from deploy_helpers import make_dq_rdz

    net, path = make_dq_rdz(tmp_path)
    out = tmp_path / "dq.onnx"
    result = export(path, "onnx", out, ExportOptions(model=net, input_shape=SHAPE))
    assert result.details["compressed"] == ["1.weight"]
    assert "1.weight::codebook" in _initializers(out)
    x = example_input()
    assert torch.allclose(run_onnxruntime(out, x), load(path, model=net)(x), rtol=0, atol=1e-5)
