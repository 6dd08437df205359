"""Low-rank factorizations W ≈ A·B under four metrics (companion paper §2, Shumaylov et al.).

Every function takes a weight matrix W (out, d) — a Conv2d weight (out, in, kh, kw) is first
viewed as (out, in·kh·kw) by ``as_matrix`` — and returns factors (A (out, r), B (r, d)) in
float64. The metric says which error the rank-r fit minimizes:

- ``truncated_svd``: ||W − AB||_F² (the identity metric; Eckart–Young);
- ``fwsvd``: Σ_i ŵ_i² ||(W − AB)_i||² with ŵ_i = sqrt(Σ_j I_ij) (FWSVD, Hsu et al. 2022);
- ``weighted_lowrank``: Σ_ij I_ij (W − AB)_ij² (element-wise, alternating weighted least
  squares; each half-step is an exact minimization, so the objective never increases);
- ``whitened_svd``: E_x ||(W − AB) x||² = tr((W − AB) M (W − AB)ᵀ) with M = E[x xᵀ]
  (ASVD / SVD-LLM): S Sᵀ = M + eps·I (Cholesky), SVD of W S, truncate, B ← B S⁻¹.

Factors are split evenly: A = U_r Σ_r^½, B = Σ_r^½ V_rᵀ (mapped back by the metric), so both
have similar ranges — which helps when the factors are quantized afterwards.
Private helpers (``_``) do not validate; the public functions do.
"""

from __future__ import annotations

import torch

from rdcompress.errors import ConfigError, NonFiniteError

Factors = tuple[torch.Tensor, torch.Tensor]  # A (out, r), B (r, d), float64


def as_matrix(weight: torch.Tensor) -> torch.Tensor:
    """A Linear (out, in) or Conv2d (out, in, kh, kw) weight as an (out, d) float64 matrix."""
    if weight.ndim not in (2, 4):
        raise ConfigError(
            f"low rank needs a 2-D (Linear) or 4-D (Conv2d) weight, got shape "
            f"{tuple(weight.shape)}; leave this parameter out of the compressed layers."
        )
    return weight.detach().reshape(weight.shape[0], -1).to("cpu", torch.float64)


def max_useful_rank(out: int, d: int) -> int:
    """The largest r whose factors (r·(out + d) numbers) cost less than the dense out·d."""
    return (out * d - 1) // (out + d)


def check_rank(rank: int, out: int, d: int, name: str = "weight") -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(out, d):
        raise ConfigError(
            f"rank={rank!r} for {name} of shape ({out}, {d}) must be an integer in "
            f"[1, min(out, d)={min(out, d)}]."
        )


def _check_matrix(W: torch.Tensor, rank: int, what: str = "W") -> torch.Tensor:
    if W.ndim != 2:
        raise ConfigError(f"{what} must be a matrix (out, d), got shape {tuple(W.shape)}; "
                          "reshape conv weights with as_matrix first.")
    if not torch.isfinite(W).all():
        raise NonFiniteError(f"{what} holds {int((~torch.isfinite(W)).sum())} NaN/inf values.")
    check_rank(rank, W.shape[0], W.shape[1], what)
    return W.to(torch.float64)


def _check_importance(I: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    if I.shape != W.shape:
        raise ConfigError(f"importance shape {tuple(I.shape)} differs from the weight's "
                          f"{tuple(W.shape)}; pass I reshaped like the weight matrix.")
    if not torch.isfinite(I).all() or (I < 0).any():
        raise NonFiniteError("importance must be finite and >= 0.")
    return I.to(torch.float64)


def _split(u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, rank: int) -> Factors:
    root = s[:rank].sqrt()  # (r,)
    return u[:, :rank] * root, root[:, None] * vh[:rank]  # (out, r), (r, d)


def truncated_svd(W: torch.Tensor, rank: int) -> Factors:
    """The best rank-r approximation in Frobenius norm (Eckart–Young)."""
    W = _check_matrix(W, rank)
    u, s, vh = torch.linalg.svd(W, full_matrices=False)
    return _split(u, s, vh, rank)


def row_weights(I: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """FWSVD's ŵ_i = sqrt(Σ_j I_ij), (out,), floored at eps·mean so that it can be inverted."""
    w = I.to(torch.float64).sum(1).sqrt()  # (out,)
    floor = eps * float(w.mean()) if float(w.mean()) > 0 else 1.0
    return w.clamp_min(floor)


def fwsvd(W: torch.Tensor, I: torch.Tensor, rank: int) -> Factors:
    """Fisher-weighted SVD: SVD of diag(ŵ) W, truncated, A mapped back by diag(ŵ)⁻¹."""
    W = _check_matrix(W, rank)
    rows = row_weights(_check_importance(I, W))  # (out,)
    u, s, vh = torch.linalg.svd(rows[:, None] * W, full_matrices=False)
    A, B = _split(u, s, vh, rank)
    return A / rows[:, None], B


def weighted_lowrank(W: torch.Tensor, I: torch.Tensor, rank: int, iters: int = 10,
                     init: Factors | None = None, ridge: float = 1e-10) -> Factors:
    """Minimize Σ I ⊙ (W − AB)² by alternating weighted least squares from FWSVD (or ``init``).

    Row i of A solves (B diag(I_i) Bᵀ) a_i = B diag(I_i) w_i, column j of B the transposed
    system; ``ridge`` (relative to each Gram's mean diagonal) keeps zero-importance rows and
    columns solvable (their factor entries go to 0, which changes nothing they are weighted by).
    """
    W = _check_matrix(W, rank)
    I = _check_importance(I, W)
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 0:
        raise ConfigError(f"iters={iters!r} must be an integer >= 0.")
    A, B = fwsvd(W, I, rank) if init is None else (init[0].double(), init[1].double())
    for _ in range(iters):
        A = _weighted_rows(W, I, B, ridge)  # (out, r)
        B = _weighted_rows(W.T, I.T, A.T, ridge).T  # (r, d)
    return A, B


def _weighted_rows(W: torch.Tensor, I: torch.Tensor, B: torch.Tensor, ridge: float
                   ) -> torch.Tensor:
    """argmin_A Σ I ⊙ (W − A B)² row by row: W, I (n, d), B (r, d) -> A (n, r)."""
    rank, d = B.shape
    rhs = (I * W) @ B.T  # (n, r)
    # gram[i, k, l] = Σ_j I_ij B_kj B_lj as one GEMM: I (n, d) @ (B_k ⊙ B_l)ᵀ (d, r·r),
    # in chunks of k so the (chunk, r, d) products stay near 16 Mi numbers
    gram = torch.empty(W.shape[0], rank, rank, dtype=B.dtype)  # (n, r, r)
    step = max(1, 2**24 // max(1, rank * d))
    for start in range(0, rank, step):
        pairs = B[start:start + step, None, :] * B[None, :, :]  # (chunk, r, d)
        gram[:, start:start + step] = (I @ pairs.reshape(-1, d).T).reshape(W.shape[0], -1, rank)
    scale = gram.diagonal(dim1=1, dim2=2).mean(1)  # (n,)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero weights: A_i = 0
    eye = torch.eye(B.shape[0], dtype=B.dtype)
    gram = gram + (ridge * scale)[:, None, None] * eye
    return torch.linalg.solve(gram, rhs.unsqueeze(-1)).squeeze(-1)


def whitening(moment: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Lower-triangular S with S Sᵀ = M + eps·mean(diag M)·I, (d, d) float64."""
    M = moment.to(torch.float64)
    damp = eps * float(M.diagonal().mean()) if float(M.diagonal().mean()) > 0 else eps
    eye = torch.eye(M.shape[0], dtype=torch.float64)
    S, info = torch.linalg.cholesky_ex(M + damp * eye)
    if int(info) != 0:
        raise NonFiniteError(
            f"the input moment is not positive definite even with damping {damp:.3g}; "
            "raise eps or collect it over more calibration samples."
        )
    return S


def whitened_svd(W: torch.Tensor, moment: torch.Tensor, rank: int, eps: float = 1e-6
                 ) -> Factors:
    """Activation-aware low rank: the rank-r minimizer of tr((W − AB) M (W − AB)ᵀ)."""
    W = _check_matrix(W, rank)
    d = W.shape[1]
    if moment.shape != (d, d):
        raise ConfigError(f"input moment of shape {tuple(moment.shape)} does not fit a weight "
                          f"with d={d} inputs; expected ({d}, {d}).")
    if not torch.isfinite(moment).all():
        raise NonFiniteError("the input moment holds NaN/inf values.")
    S = whitening(moment, eps)  # (d, d) lower
    u, s, vh = torch.linalg.svd(W @ S, full_matrices=False)
    A, B = _split(u, s, vh, rank)  # B (r, d) in whitened coordinates
    # B S⁻¹ = (S⁻ᵀ Bᵀ)ᵀ: a triangular solve with the upper factor Sᵀ
    B = torch.linalg.solve_triangular(S.T, B.T, upper=True, left=True).T
    return A, B
