"""Issue 18: weights used outside their module are refused (naming the parameter), harmless
uses are not, and a module torch.func cannot run is named in the error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rdcompress.errors import ConfigError
from rdcompress.importance import compute_importance

sys.path.insert(0, str(Path(__file__).parent))  # importlib import mode: reach the helper module
from test_hessian import hessian_diagonal_bruteforce  # noqa: E402


class FunctionalTiedHead(nn.Module):
    """Output layer F.linear(h, embed.weight): the embedding's hooks never see that use."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.fc = nn.Embedding(9, 5), nn.Linear(5, 5)

    def forward(self, tokens: Tensor) -> Tensor:
        return F.linear(torch.tanh(self.fc(self.embed(tokens).mean(1))), self.embed.weight)


class HarmlessUses(nn.Module):
    """Reads a weight's dtype and shape and uses it under no_grad: no gradient flows."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 3)

    def forward(self, x: Tensor) -> Tensor:
        x = x.to(self.fc.weight.dtype).reshape(-1, self.fc.weight.shape[1])
        with torch.no_grad():
            scale = self.fc.weight.norm()
        return self.fc(x) / scale


class NotVmappable(nn.Module):
    """Data-dependent Python control flow on a tensor value: torch.func cannot vmap it."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(5))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gain if float(x.sum()) > 0 else -x * self.gain


@pytest.mark.parametrize("objective", ["fisher", "gradient", "output"])
def test_weight_used_outside_its_module_is_refused_by_name(objective):
    torch.manual_seed(0)
    tokens, labels = torch.randint(0, 9, (4, 3)), torch.tensor([0, 3, 8, 1])
    with pytest.raises(ConfigError, match=r"'embed\.weight' is also used outside"):
        compute_importance(FunctionalTiedHead(), [(tokens, labels)], objective)


def test_metadata_and_no_grad_uses_are_not_refused():
    torch.manual_seed(0)
    model = HarmlessUses()
    got = compute_importance(model, [(torch.randn(4, 5), torch.tensor([0, 1, 2, 0]))], "fisher")
    assert set(got.quadratic) == {"fc.weight", "fc.bias"}
    assert all(bool(v.abs().sum() > 0) for v in got.quadratic.values())


def test_module_the_fallback_cannot_run_is_named():
    model = nn.Sequential(nn.Linear(5, 5), NotVmappable(), nn.Linear(5, 3))
    with pytest.raises(ConfigError, match=r"module '1' \(NotVmappable\).*torch\.func"):
        compute_importance(model, [(torch.randn(4, 5), torch.tensor([0, 1, 2, 0]))], "fisher")


def test_hessian_objective_is_not_refused_and_stays_exact():
    """The Hessian engines check the hooks against autograd and switch to torch.func, so the
    refusal applies to the first-order statistics only."""
    torch.manual_seed(0)
    model = FunctionalTiedHead().double().eval()
    tokens, labels = torch.randint(0, 9, (4, 3)), torch.tensor([0, 3, 8, 1])
    got = compute_importance(model, [(tokens, labels)], "hessian", dtype="float64")
    ref = hessian_diagonal_bruteforce(model, tokens, labels, 1.0)
    for name, diag in ref.items():
        torch.testing.assert_close(got.quadratic[name].double(), diag.mean(0), rtol=1e-6,
                                   atol=1e-12)
