"""rdcompress.batches: one reading of DataLoader batches, ambiguous ones refused, batch_fn."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from rdcompress.batches import unpack_batch
from rdcompress.errors import ConfigError
from rdcompress.evaluate import collect_outputs
from rdcompress.importance import compute_importance
from rdcompress.lowrank import collect_input_moments


def test_default_readings():
    x, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 1])
    inputs, labels = unpack_batch(x)
    assert inputs.single is x and labels is None
    inputs, labels = unpack_batch((x, y))
    assert inputs.single is x and labels is y
    inputs, labels = unpack_batch([x, y, "extra"])       # (inputs, labels, ...) as before
    assert inputs.single is x and labels is y
    assert unpack_batch((x, None))[1] is None and unpack_batch([x])[0].single is x
    targets = torch.randn(4, 2)                           # regression targets
    assert unpack_batch((x, targets))[1] is targets
    ids, mask = torch.randint(0, 9, (4, 5)), torch.ones(4, 5, dtype=torch.long)
    inputs, labels = unpack_batch({"input_ids": ids, "attention_mask": mask, "labels": y})
    assert inputs.args == () and set(inputs.kwargs) == {"input_ids", "attention_mask"}
    assert labels is y and inputs.batch_size == 4


@pytest.mark.parametrize("second", [
    torch.ones(4, 5, dtype=torch.long),     # attention mask like the ids
    torch.ones(4, 5, dtype=torch.bool),
    torch.tensor([0, 1, 2]),                # wrong number of rows
    "not a tensor",
], ids=["int-mask", "bool-mask", "rows", "str"])
def test_ambiguous_pairs_are_refused_with_the_way_out(second):
    ids = torch.randint(0, 9, (4, 5))
    with pytest.raises(ConfigError, match="batch_fn"):
        unpack_batch((ids, second))


def test_batch_fn_forms_and_bad_returns():
    ids, mask, y = torch.randint(0, 9, (4, 5)), torch.ones(4, 5), torch.tensor([0, 1, 0, 1])
    inputs, labels = unpack_batch((ids, mask, y), lambda b: ((b[0], b[1]), b[2]))
    assert inputs.args == (ids, mask) and labels is y
    inputs, _ = unpack_batch((ids, mask), lambda b: ({"ids": b[0], "mask": b[1]}, None))
    assert set(inputs.kwargs) == {"ids", "mask"}
    assert unpack_batch(ids, lambda b: (b, None))[0].single is ids
    with pytest.raises(ConfigError, match="must return"):
        unpack_batch(ids, lambda b: b)
    with pytest.raises(ConfigError, match="labels of type"):
        unpack_batch(ids, lambda b: (b, [1, 2]))


def test_rows_slice_batched_tensors_and_keep_shared_ones():
    x, shared = torch.arange(12.0).reshape(6, 2), torch.zeros(1, 2)
    inputs, _ = unpack_batch(x, lambda b: ({"x": b, "bias": shared}, None))
    part = inputs.rows(2, 5)
    assert torch.equal(part.kwargs["x"], x[2:5]) and part.kwargs["bias"] is shared


class Masked(nn.Module):
    """Two inputs: features (N, L, 3) and a mask (N, L); mean over unmasked positions."""

    def __init__(self) -> None:
        super().__init__()
        self.proj, self.head = nn.Linear(3, 4), nn.Linear(4, 3)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = torch.tanh(self.proj(x)) * mask.unsqueeze(-1)
        return self.head(h.sum(1) / mask.sum(1, keepdim=True))




def _reference(model: Masked, x: Tensor, mask: Tensor, y: Tensor) -> dict[str, Tensor]:
    """mean_n (d CE_n / d w)^2, one sample at a time."""
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for n in range(x.shape[0]):
        loss = nn.functional.cross_entropy(model(x[n:n + 1], mask[n:n + 1]), y[n:n + 1])
        grads = torch.autograd.grad(loss, list(model.parameters()))
        for name, grad in zip(total, grads, strict=True):
            total[name] += grad * grad / x.shape[0]
    return total


def test_importance_of_a_two_input_model_uses_the_mask():
    """Issue 18: with batch_fn the mask reaches the model (every chunk gets its rows) and the
    result matches a per-sample loop; the plain (x, mask) pair is refused, not misread."""
    torch.manual_seed(0)
    model = Masked().double()
    x = torch.randn(6, 5, 3, dtype=torch.float64)
    mask = (torch.rand(6, 5) > 0.4).double()
    mask[:, 0] = 1
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    got = compute_importance(model, [(x, mask, y)], "gradient", dtype="float64", chunk_size=4,
                             batch_fn=lambda b: ((b[0], b[1]), b[2]))
    ref = _reference(model, x, mask, y)
    for name, value in ref.items():
        torch.testing.assert_close(got.quadratic[name].double(), value, rtol=1e-6, atol=0)
    with pytest.raises(ConfigError, match="ambiguous batch"):
        compute_importance(nn.Sequential(nn.Embedding(9, 4), nn.Flatten(), nn.Linear(20, 2)),
                           [(torch.randint(0, 9, (4, 5)), torch.ones(4, 5, dtype=torch.long))],
                           "fisher")


def test_importance_reads_dict_batches_as_keyword_inputs():
    torch.manual_seed(1)
    model = Masked().double()
    x, mask = torch.randn(4, 5, 3, dtype=torch.float64), torch.ones(4, 5, dtype=torch.float64)
    y = torch.tensor([2, 1, 0, 1])
    got = compute_importance(model, [{"x": x, "mask": mask, "labels": y}], "gradient",
                             dtype="float64")
    ref = _reference(model, x, mask, y)
    torch.testing.assert_close(got.quadratic["proj.weight"].double(), ref["proj.weight"],
                               rtol=1e-6, atol=0)


def test_hessian_objectives_refuse_several_inputs():
    model = Masked().double()
    x, mask = torch.randn(4, 5, 3, dtype=torch.float64), torch.ones(4, 5, dtype=torch.float64)
    with pytest.raises(ConfigError, match="one input tensor"):
        compute_importance(model, [{"x": x, "mask": mask, "labels": torch.zeros(4).long()}],
                           "hessian", dtype="float64")


def test_evaluate_and_moments_take_batch_fn_and_refuse_ambiguous_pairs():
    model = Masked().double()
    x, mask = torch.randn(4, 5, 3, dtype=torch.float64), torch.ones(4, 5, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    outputs, labels = collect_outputs(model, [(x, mask, y)],
                                      batch_fn=lambda b: ((b[0], b[1]), b[2]))
    torch.testing.assert_close(outputs, model(x, mask).detach())
    assert torch.equal(labels, y)
    moments = collect_input_moments(model, [(x, mask)], batch_fn=lambda b: (b, None))
    assert moments.counts
    ids = torch.randint(0, 9, (4, 5))
    embed = nn.Sequential(nn.Embedding(9, 3), nn.Flatten(), nn.Linear(15, 2))
    with pytest.raises(ConfigError, match="ambiguous"):
        collect_outputs(embed, [(ids, torch.ones(4, 5, dtype=torch.long))])
