"""Tied fine-tuning: masks stay zero, weights stay tied to their codebooks, centroid gradients are
the sums of their members' gradients."""

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from rdcompress.codec import PrunedTensor, QuantizedTensor
from rdcompress.compress import PruneConfig, PruneQuantizeConfig, QuantizeConfig, compress
from rdcompress.pipeline import tensor_loader
from rdcompress.recover import RecoverConfig, TiedWeights, decoded_state, finetune


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 4))


def _data(n=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 6, generator=generator)
    labels = torch.randint(0, 4, (n,), generator=generator)
    return tensor_loader(inputs, labels, batch_size=16)


def _setup(config):
    original = _net()
    compressed = compress(original, config)
    model = _net(1)
    model.load_state_dict(compressed.state_dict())
    return original, compressed, model, TiedWeights(model, compressed.tensors,
                                                    compressed.manifest)


def test_leaves_reproduce_the_decoded_weights_bit_for_bit():
    _, compressed, _, tied = _setup(PruneQuantizeConfig(kept_fraction=0.5, clusters=4))
    state = compressed.state_dict()
    for name, weight in tied.weights().items():
        assert torch.equal(weight, state[name]), name
    assert set(tied.codebooks.keys()) == {"0/weight", "2/weight"}
    assert set(tied.raw.keys()) == {"0/bias", "2/bias"}


def test_centroid_gradient_is_the_sum_of_its_members_gradients():
    _, compressed, model, tied = _setup(PruneQuantizeConfig(kept_fraction=0.6, clusters=3))
    x, y = next(iter(_data()))
    loss = F.cross_entropy(functional_call(model, tied.weights(), (x,)), y)
    loss.backward()
    # brute force: the gradient of the dense weights, summed per cluster over kept positions
    dense = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    F.cross_entropy(functional_call(model, dense, (x,)), y).backward()
    for entry in compressed.tensors:
        if not isinstance(entry, QuantizedTensor):
            continue
        grad = dense[entry.name].grad.reshape(-1)[torch.from_numpy(entry.mask)]
        expected = torch.zeros(entry.codebook.size).index_add_(
            0, torch.from_numpy(entry.indices), grad)
        torch.testing.assert_close(tied.codebooks[entry.name.replace(".", "/")].grad, expected,
                                   rtol=1e-5, atol=1e-7)


def _train(config, epochs=3, lr=1e-2):
    original, compressed, model, tied = _setup(config)
    before = {n: w.detach().clone() for n, w in tied.weights().items()}
    finetune(model, tied, _data(), RecoverConfig(epochs=epochs, lr=lr, loss="mix"),
             original=original)
    return compressed, model, tied, before


def test_quantized_and_pruned_weights_stay_in_their_structure():
    compressed, model, tied, before = _train(PruneQuantizeConfig(kept_fraction=0.4, clusters=4))
    entries = {e.name: e for e in tied.entries(model)}
    for entry in compressed.tensors:
        if not isinstance(entry, QuantizedTensor):
            continue
        weight = dict(model.named_parameters())[entry.name].detach().reshape(-1)
        mask = torch.from_numpy(entry.mask)
        assert torch.all(weight[~mask] == 0)  # pruned positions exactly zero
        codebook = torch.from_numpy(entries[entry.name].codebook)
        assert torch.equal(weight[mask], codebook[torch.from_numpy(entry.indices)])  # tied
        assert not torch.equal(weight, before[entry.name].reshape(-1))  # and trained
        assert (entries[entry.name].indices == entry.indices).all()
        assert (entries[entry.name].mask == entry.mask).all()
        assert entries[entry.name].codebook.dtype.name == "float32"
    assert not torch.equal(model[0].bias, before["0.bias"])  # raw tensors train freely


def test_pruned_values_train_and_pruned_positions_stay_zero():
    compressed, model, tied, before = _train(PruneConfig(kept_fraction=0.3))
    for entry in compressed.tensors:
        if isinstance(entry, PrunedTensor):
            weight = dict(model.named_parameters())[entry.name].detach().reshape(-1)
            assert torch.all(weight[~torch.from_numpy(entry.mask)] == 0)
            assert not torch.equal(weight, before[entry.name].reshape(-1))


def test_entries_decode_to_the_trained_model():
    compressed, model, tied, _ = _train(QuantizeConfig(clusters=2), epochs=1)
    state = decoded_state(tied.entries(model), compressed.manifest)
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor), name
