"""Declarative small problems (BackPACK style) and brute-force per-sample references.

Each problem builds a tiny float64 model in eval mode and its inputs/labels. The references
loop over samples one at a time through torch.autograd and follow the paper's definitions
literally (no output-space factorization), so they check the fast path independently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLASSES = 4


class SelfAttention(nn.Module):
    """One-head attention block with a residual and LayerNorm: (N, L, E) -> (N, classes)."""

    def __init__(self, embed: int = 6) -> None:
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(embed, embed) for _ in range(3))
        self.norm = nn.LayerNorm(embed)
        self.head = nn.Linear(embed, CLASSES)

    def forward(self, x: Tensor) -> Tensor:  # (N, L, E)
        q, k, v = self.query(x), self.key(x), self.value(x)
        weights = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)  # (N, L, L)
        h = self.norm(x + weights @ v)
        return self.head(h.mean(1))


class TokenModel(nn.Module):
    """Embedding (with padding_idx) + LayerNorm + mean pooling + Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(9, 5, padding_idx=0)
        self.norm = nn.LayerNorm(5)
        self.head = nn.Linear(5, CLASSES)

    def forward(self, tokens: Tensor) -> Tensor:  # (N, L) int
        return self.head(self.norm(self.embed(tokens)).mean(1))


class Scale(nn.Module):
    """No rule for this type: exercises the torch.func fallback."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.linspace(0.5, 1.5, features))

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x * self.gain)


class SharedLinear(nn.Module):
    """The same Linear called twice (per-sample gradients summed over calls before squaring)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Linear(5, 5)
        self.head = nn.Linear(5, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.inner(torch.tanh(self.inner(x))))


class MHA(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(6, 2, batch_first=True)
        self.head = nn.Linear(6, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.attn(x, x, x)
        return self.head(out.mean(1))


class InplaceResidual(nn.Module):
    """Conv -> BN -> in-place ReLU, in-place residual add: hooks must see pre-in-place values."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(3 * 5 * 5, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn(self.conv(x))
        out += x  # in place on the BatchNorm's output, then an in-place ReLU on top
        out = self.relu(out)
        return self.head(out.flatten(1))


class TiedEmbeddingDecoder(nn.Module):
    """Decoder weight tied to the embedding (language-model style); padding row 0."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(9, 5, padding_idx=0)
        self.decoder = nn.Linear(5, 9)
        self.decoder.weight = self.embed.weight  # (9, 5): the same Parameter

    def forward(self, tokens: Tensor) -> Tensor:  # (N, L) int -> (N, 9)
        return self.decoder(torch.tanh(self.embed(tokens)).mean(1))


class TiedEmbeddingUsedPad(TiedEmbeddingDecoder):
    """As TiedEmbeddingDecoder, with the padding row no longer zero: the decoder path gives it a
    gradient, so after training with tied weights it has moved, and padding tokens look it up."""

    def __init__(self) -> None:
        super().__init__()
        with torch.no_grad():
            self.embed.weight[0].normal_()


class TiedEmbeddingParallel(nn.Module):
    """Embedding (padding row 0, not zero) tied to a decoder on a parallel branch: the logits are
    piecewise linear in the tied weight, so the exact Hessian takes the Gauss-Newton path."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.context = nn.Embedding(9, 5, padding_idx=0), nn.Embedding(9, 5)
        self.head, self.decoder = nn.Linear(5, 9), nn.Linear(5, 9, bias=False)
        self.decoder.weight = self.embed.weight  # (9, 5): the same Parameter
        with torch.no_grad():
            self.embed.weight[0].normal_()

    def forward(self, tokens: Tensor) -> Tensor:  # (N, L) int -> (N, 9)
        return (self.head(torch.relu(self.embed(tokens)).mean(1))
                + self.decoder(torch.relu(self.context(tokens)).mean(1)))


class PaddingHeldFixed(nn.Module):
    """Stands in for an ``nn.Embedding(padding_idx=p)`` in reference computations: looks rows up
    by plain indexing and puts a *detached* copy of row p where the tokens are p. That is the
    definition autograd's padding_idx implements (the padding row is a constant inside the
    lookup), written so that forward and reverse mode both follow it. Shares the weight."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        assert embedding.padding_idx is not None
        self.weight, self.padding_idx = embedding.weight, embedding.padding_idx

    def forward(self, tokens: Tensor) -> Tensor:  # (N, L) int -> (N, L, D)
        rows = self.weight[tokens]
        fixed = self.weight[self.padding_idx].detach().expand_as(rows)
        return torch.where((tokens == self.padding_idx).unsqueeze(-1), fixed, rows)


def hold_padding_fixed(model: nn.Module) -> nn.Module:
    """The model with every padding Embedding child swapped for ``PaddingHeldFixed`` (in place;
    parameters, names and ties unchanged)."""
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Embedding) and child.padding_idx is not None:
            setattr(model, name, PaddingHeldFixed(child))
        else:
            hold_padding_fixed(child)
    return model


class TiedLinears(nn.Module):
    """Two Linear modules sharing one weight, each with its own bias."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(5, 5), nn.Linear(5, 5)
        self.second.weight = self.first.weight
        self.head = nn.Linear(5, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.tanh(self.second(torch.tanh(self.first(x)))))


class TiedConvs(nn.Module):
    """Two Conv2d modules sharing one weight, plus one module reachable by two names."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Conv2d(2, 2, 3, padding=1)
        self.second = nn.Conv2d(2, 2, 3, stride=2, bias=False)
        self.second.weight = self.first.weight
        self.norm = nn.BatchNorm2d(2)
        self.again = self.norm  # the same module twice in the tree: one site
        self.head = nn.Linear(2 * 2 * 2, CLASSES)

    def forward(self, x: Tensor) -> Tensor:  # (N, 2, 5, 5)
        h = self.norm(torch.tanh(self.first(x)))
        return self.head(self.again(self.second(h)).flatten(1))


class TiedWithFallback(nn.Module):
    """A Linear bias tied to the parameter of a module without a rule (torch.func)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(5, 6)
        self.scale = Scale(6)
        self.scale.gain = self.linear.bias
        self.head = nn.Linear(6, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.scale(self.linear(x)))


class PositionEmbeddings(nn.Module):
    """Token + position embeddings, position_ids of shape (1, L) broadcast over the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens, self.positions = nn.Embedding(9, 6), nn.Embedding(7, 6)
        self.norm = nn.LayerNorm(6)
        self.head = nn.Linear(6, CLASSES)

    def forward(self, tokens: Tensor) -> Tensor:  # (N, L) int
        position_ids = torch.arange(tokens.shape[1]).unsqueeze(0)  # (1, L)
        return self.head(self.norm(self.tokens(tokens) + self.positions(position_ids)).mean(1))


class FunctionalActivations(nn.Module):
    """F.gelu / F.silu called in forward (no activation modules)."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second, self.head = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(F.silu(self.second(F.gelu(self.first(x)))))


class Recurrent(nn.Module):
    """GRU/LSTM over (N, L, 4) inputs; batch on dimension 1 unless batch_first."""

    def __init__(self, kind: type[nn.RNNBase] = nn.GRU, batch_first: bool = False) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.rnn = kind(4, 5, batch_first=batch_first)
        self.head = nn.Linear(5, CLASSES)

    def forward(self, x: Tensor) -> Tensor:  # (N, L, 4)
        out, _ = self.rnn(x if self.batch_first else x.transpose(0, 1))
        return self.head((out if self.batch_first else out.transpose(0, 1)).mean(1))


class LMHead(nn.Module):
    """BERT-style MLM head: owns its bias (so torch.func handles it), decoder tied to the
    embedding (a rule site)."""

    def __init__(self, embedding: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(6, 6)
        self.decoder = nn.Linear(6, 9, bias=False)
        self.decoder.weight = embedding.weight
        self.bias = nn.Parameter(torch.linspace(-0.2, 0.2, 9))

    def forward(self, h: Tensor) -> Tensor:
        return self.decoder(F.gelu(self.dense(h))) + self.bias


class TinyTransformer(nn.Module):
    """Embeddings with broadcast position ids, pre-norm MultiheadAttention block, GELU MLP, and
    an MLM head tied to the token embedding: (N, L) int -> (N, 9)."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens, self.positions = nn.Embedding(9, 6), nn.Embedding(7, 6)
        self.norm1, self.norm2 = nn.LayerNorm(6), nn.LayerNorm(6)
        self.attn = nn.MultiheadAttention(6, 2, batch_first=True)
        self.up, self.down = nn.Linear(6, 8), nn.Linear(8, 6)
        self.head = LMHead(self.tokens)

    def forward(self, tokens: Tensor) -> Tensor:
        position_ids = torch.arange(tokens.shape[1]).unsqueeze(0)  # (1, L)
        h = self.tokens(tokens) + self.positions(position_ids)
        a = self.norm1(h)
        h = h + self.attn(a, a, a, need_weights=False)[0]
        h = h + self.down(F.gelu(self.up(self.norm2(h))))
        return self.head(h[:, 0])


def _randomize_bn(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    return model


@dataclass
class Problem:
    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[torch.Generator], Tensor]


def _images(c: int, h: int, w: int, n: int = 5) -> Callable[[torch.Generator], Tensor]:
    return lambda gen: torch.randn(n, c, h, w, generator=gen, dtype=torch.float64)


PROBLEMS = [
    Problem("mlp", lambda: nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, CLASSES)),
            lambda gen: torch.randn(6, 5, generator=gen, dtype=torch.float64)),
    Problem("conv-stride-dilation-groups", lambda: nn.Sequential(
        nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2), nn.ReLU(),
        nn.Conv2d(6, 4, 2, groups=2, bias=False), nn.Flatten(), nn.LazyLinear(CLASSES)),
        _images(4, 9, 8)),
    Problem("conv-same-reflect-1d", lambda: nn.Sequential(
        nn.Conv1d(3, 4, 3, padding="same", padding_mode="reflect"), nn.Tanh(),
        nn.Conv1d(4, 2, 3, padding="same", dilation=2), nn.Flatten(), nn.LazyLinear(CLASSES)),
        lambda gen: torch.randn(5, 3, 10, generator=gen, dtype=torch.float64)),
    Problem("batchnorm-eval", lambda: _randomize_bn(nn.Sequential(
        nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 6),
        nn.BatchNorm1d(6), nn.Tanh(), nn.Linear(6, CLASSES))), _images(2, 6, 6)),
    Problem("groupnorm", lambda: nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.GroupNorm(2, 4), nn.Tanh(), nn.Flatten(), nn.LazyLinear(CLASSES)),
        _images(2, 5, 5)),
    Problem("embedding-layernorm", TokenModel,
            lambda gen: torch.randint(0, 9, (6, 7), generator=gen)),
    Problem("self-attention", SelfAttention,
            lambda gen: torch.randn(5, 4, 6, generator=gen, dtype=torch.float64)),
    Problem("fallback-custom-module", lambda: nn.Sequential(
        nn.Linear(5, 6), Scale(6), nn.Linear(6, CLASSES)),
        lambda gen: torch.randn(6, 5, generator=gen, dtype=torch.float64)),
    Problem("fallback-multihead-attention", MHA,
            lambda gen: torch.randn(4, 3, 6, generator=gen, dtype=torch.float64)),
    Problem("shared-weights", SharedLinear,
            lambda gen: torch.randn(6, 5, generator=gen, dtype=torch.float64)),
    Problem("inplace-residual", lambda: _randomize_bn(InplaceResidual()), _images(3, 5, 5)),
    Problem("tied-embedding-decoder", TiedEmbeddingDecoder,
            lambda gen: torch.randint(0, 9, (6, 7), generator=gen)),
    Problem("tied-embedding-used-pad", TiedEmbeddingUsedPad,
            lambda gen: torch.randint(0, 9, (6, 7), generator=gen)),
    Problem("tied-embedding-parallel", TiedEmbeddingParallel,
            lambda gen: torch.randint(0, 9, (6, 7), generator=gen)),
    Problem("tied-linears", TiedLinears,
            lambda gen: torch.randn(6, 5, generator=gen, dtype=torch.float64)),
    Problem("tied-convs-shared-module", lambda: _randomize_bn(TiedConvs()), _images(2, 5, 5)),
    Problem("tied-with-fallback", TiedWithFallback,
            lambda gen: torch.randn(6, 5, generator=gen, dtype=torch.float64)),
    # Issue 18: what transformers and modern CNNs do.
    Problem("embedding-broadcast-position-ids", PositionEmbeddings,
            lambda gen: torch.randint(0, 9, (6, 7), generator=gen)),
    Problem("functional-gelu-silu", FunctionalActivations,
            lambda gen: torch.randn(6, 5, generator=gen, dtype=torch.float64)),
    Problem("gru-batch-dim-1", Recurrent,
            lambda gen: torch.randn(5, 3, 4, generator=gen, dtype=torch.float64)),
    Problem("lstm-batch-first", lambda: Recurrent(nn.LSTM, batch_first=True),
            lambda gen: torch.randn(5, 3, 4, generator=gen, dtype=torch.float64)),
    Problem("depthwise-conv-bn-gelu", lambda: _randomize_bn(nn.Sequential(
        nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.BatchNorm2d(4), nn.GELU(),
        nn.Conv2d(4, 3, 1), nn.Flatten(), nn.Linear(3 * 4 * 4, CLASSES))), _images(4, 4, 4)),
    Problem("transformer-mlm-tied-head", TinyTransformer,
            lambda gen: torch.randint(0, 9, (6, 5), generator=gen)),
]


def instantiate(problem: Problem, seed: int = 0) -> tuple[nn.Module, Tensor, Tensor]:
    """(float64 eval model, inputs, labels) for ``problem``."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    inputs = problem.inputs(gen)
    model = problem.build().eval()
    model(inputs[:1].float() if inputs.is_floating_point() else inputs[:1])  # lazy shapes
    model = model.double().eval()
    labels = torch.randint(0, CLASSES, (inputs.shape[0],), generator=gen)
    return model, inputs, labels


def _per_sample(model: nn.Module, inputs: Tensor,
                scalars: Callable[[Tensor, int], list[Tensor]]) -> dict[str, Tensor]:
    """mean_n sum_k (d scalars_k(z_n) / d param)^2, one sample at a time through autograd."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    for n in range(inputs.shape[0]):
        logits = model(inputs[n:n + 1])[0]  # (C,)
        for scalar in scalars(logits, n):
            grads = torch.autograd.grad(scalar, list(params.values()), retain_graph=True,
                                        allow_unused=True)
            for name, grad in zip(params, grads, strict=True):
                if grad is not None:
                    total[name] += grad * grad
    return {name: value / inputs.shape[0] for name, value in total.items()}


def brute_force(model: nn.Module, inputs: Tensor, labels: Tensor, objective: str,
                temperature: float = 1.0) -> dict[str, Tensor]:
    """Reference importance from the definitions (Table 1, eq. 5, Table 2)."""
    if objective == "fisher":  # sum_c (d f_c / dw)^2 / f_c: each term's own backward
        def scalars(z: Tensor, n: int) -> list[Tensor]:
            probs = torch.softmax(z / temperature, 0)
            return [probs[c] / probs[c].detach().sqrt() for c in range(z.shape[0])]
    elif objective == "output":
        def scalars(z: Tensor, n: int) -> list[Tensor]:
            return list(z)
    elif objective == "gradient":
        def scalars(z: Tensor, n: int) -> list[Tensor]:
            return [F.cross_entropy(z[None] / temperature, labels[n:n + 1])]
    else:
        raise ValueError(objective)
    return _per_sample(model, inputs, scalars)


def assert_relative_close(got: dict[str, Tensor], ref: dict[str, Tensor],
                          tol: float = 1e-5) -> None:
    """Per parameter, max error <= tol * its max; parameters whose importance is rounding noise
    (e.g. an attention key bias, to which softmax is invariant) are judged on the model's scale."""
    assert set(got) == set(ref), (sorted(got), sorted(ref))
    overall = max(float(v.abs().max()) for v in ref.values())
    assert overall > 0, "reference is all zero (problem too degenerate)"
    for name, expected in ref.items():
        scale = max(float(expected.abs().max()), 1e-12 * overall)
        error = float((got[name].double() - expected).abs().max())
        assert error <= tol * scale, f"{name}: max error {error:.3g} vs scale {scale:.3g}"
