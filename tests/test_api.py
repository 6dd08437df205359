"""open_model: the one place that reads every model source (.rdz, weights + sidecar, zoo)."""

from __future__ import annotations

import pytest
import torch

import rdcompress
from rdcompress.compress import QuantizeConfig, compress
from rdcompress.errors import ModelError
from rdcompress.models import build, load_model


def test_open_model_reads_a_rdz_and_load_model_points_there(tmp_path):
    torch.manual_seed(0)
    net = build("digits-mlp")
    path = tmp_path / "q.rdz"
    compressed = compress(net, QuantizeConfig(clusters=4), model_spec={"zoo": "digits-mlp",
                                                                       "kwargs": {}},
                          model_metadata={"dataset": "digits"})
    compressed.save(path)
    loaded = rdcompress.open_model(path)
    assert loaded.spec == {"zoo": "digits-mlp", "kwargs": {}} and loaded.dataset == "digits"
    for name, value in compressed.state_dict().items():
        assert torch.equal(loaded.module.state_dict()[name], value)
    with pytest.raises(ModelError, match="open it with rdcompress.open_model"):
        load_model(path)
    with pytest.raises(ModelError, match="drop --weights"):
        rdcompress.open_model(path, weights="w.safetensors")
    assert rdcompress.open_model("digits-mlp").spec["zoo"] == "digits-mlp"  # other sources
