"""recover(): the file after recovery decodes to the evaluated model, runs are deterministic, an
interrupted run resumes to the same result, and bad inputs fail clearly."""

import hashlib

import pytest
import torch
from torch import nn

from rdcompress.codec import QuantizedTensor, read_rdz_tensors
from rdcompress.compress import PruneQuantizeConfig, compress, load
from rdcompress.errors import ConfigError, ModelError
from rdcompress.pipeline import tensor_loader
from rdcompress.recover import RecoverConfig, recover


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(16, 4))


def _data(n=64, seed=0, batch_size=16, shuffle=True):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 6, generator=generator)
    labels = (inputs[:, 0] > 0).long() + 2 * (inputs[:, 1] > 0).long()
    if not shuffle:
        return tensor_loader(inputs, labels, batch_size)
    dataset = torch.utils.data.TensorDataset(inputs, labels)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                       generator=torch.Generator().manual_seed(123))


@pytest.fixture
def rdz(tmp_path):
    original = _net().eval()
    compressed = compress(original, PruneQuantizeConfig(kept_fraction=0.5, clusters=4))
    path = tmp_path / "m.rdz"
    compressed.save(path)
    return original, path


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_recovered_file_decodes_to_the_evaluated_model(rdz, tmp_path):
    original, path = rdz
    digest = _sha(path)
    config = RecoverConfig(epochs=2, lr=1e-2, loss="mix", bias_correction=True)
    result = recover(path, _data(), config, original=original, model=_net(5),
                     eval_data=_data(shuffle=False))
    out = tmp_path / "r.rdz"
    result.save(out)
    loaded = load(out, model=_net(7))
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    x = torch.randn(9, 6)
    assert torch.equal(loaded(x), result.model.eval()(x))
    assert _sha(path) == digest  # the input is untouched
    manifest, entries = read_rdz_tensors(out)
    _, entries_in = read_rdz_tensors(path)
    assert manifest["recovery"]["settings"]["epochs"] == 2
    assert manifest["method"] == "prune+quantize"
    for new, old in zip(entries, entries_in, strict=True):
        if isinstance(old, QuantizedTensor):
            assert (new.indices == old.indices).all() and (new.mask == old.mask).all()
            assert not (new.codebook == old.codebook).all()
    assert [row["epoch"] for row in result.history] == [0, 1, 2]
    assert result.history[-1]["loss"] < result.history[1]["loss"] * 1.5
    with pytest.raises(ConfigError, match="never overwrites its input"):
        result.save(path)


def test_recovery_is_deterministic_and_resumes_to_the_same_result(rdz, tmp_path):
    original, path = rdz
    config = RecoverConfig(epochs=3, lr=1e-2, loss="distill")
    reference = recover(path, _data(), config, original=original, model=_net())
    again = recover(path, _data(), config, original=original, model=_net())
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(again.model.state_dict()[name], tensor), name

    class Interrupting:  # a loader that dies in the middle of epoch 2 (after the BN pass)
        def __init__(self, loader):
            self.loader, self.batches = loader, 0
            self.generator = loader.generator

        def __len__(self):
            return len(self.loader)

        def __iter__(self):
            for batch in self.loader:
                self.batches += 1
                if self.batches == 2 * len(self.loader) + 2:
                    raise KeyboardInterrupt
                yield batch

    checkpoint = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        recover(path, Interrupting(_data()), config, original=original, model=_net(),
                checkpoint=checkpoint)
    assert checkpoint.exists()
    resumed = recover(path, _data(), config, original=original, model=_net(),
                      checkpoint=checkpoint)
    for name, tensor in reference.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], tensor), name
    other = RecoverConfig(epochs=3, lr=2e-2, loss="distill")
    with pytest.raises(ModelError, match="another run"):
        recover(path, _data(), other, original=original, model=_net(), checkpoint=checkpoint)


def test_a_compressed_model_in_memory_and_level_zero_only(rdz):
    original, _ = rdz
    compressed = compress(original, PruneQuantizeConfig(kept_fraction=0.5, clusters=4))
    result = recover(compressed, _data(), RecoverConfig(epochs=0), original=original)
    norm = result.model[1]
    assert not torch.equal(norm.running_mean, original[1].running_mean)  # re-estimated
    state = compressed.state_dict()
    assert torch.equal(result.model[0].weight, state["0.weight"])  # weights untouched


def test_bad_inputs_fail_clearly(rdz, tmp_path):
    original, path = rdz
    with pytest.raises(ConfigError, match="epochs=-1 must be >= 0"):
        RecoverConfig(epochs=-1)
    with pytest.raises(ConfigError, match="loss='kl' is unknown"):
        RecoverConfig(loss="kl")
    with pytest.raises(ConfigError, match="needs the original model"):
        recover(path, _data(), RecoverConfig(loss="distill"), model=_net())
    with pytest.raises(ConfigError, match="does not exist"):
        recover(tmp_path / "missing.rdz", _data(), RecoverConfig(loss="task"), model=_net())
    wrong = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    with pytest.raises(ModelError, match="does not fit the architecture"):
        recover(path, _data(), RecoverConfig(loss="task"), model=wrong)
    with pytest.raises(ModelError, match="not the compressed model's architecture"):
        recover(path, _data(), RecoverConfig(), original=wrong, model=_net())


def test_low_rank_composites_stay_frozen_and_reported(tmp_path):
    from rdcompress.compress.lowrank import LowRankConfig

    original = _net().eval()
    path = tmp_path / "lr.rdz"
    compress(original, LowRankConfig(rank=2)).save(path)
    with pytest.warns(UserWarning, match="stay as the file stores them"):
        result = recover(path, _data(), RecoverConfig(epochs=1, lr=1e-2), original=original,
                         model=_net())
    assert result.manifest["recovery"]["frozen"] == ["0.weight", "4.weight"]
    out = tmp_path / "lr-r.rdz"
    result.save(out)
    loaded = load(out, model=_net())
    before = load(path, model=_net())
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert torch.equal(loaded[0].weight, before[0].weight)  # the composite is unchanged
    assert not torch.equal(loaded[0].bias, before[0].bias)  # the raw bias trained
