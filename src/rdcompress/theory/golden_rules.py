"""Theorem 4 and Corollaries 1–2, checked exhaustively on a small ReLU model σ(wᵀx).

For a class of compressed weights, compare the argmin of the importance objective
(w − ŵ)ᵀ I_w (w − ŵ) (I_w = Σ_X/2) with the argmin of the true output MSE (closed form).

What holds, and why (a corrected version of Lemma 3): if ŵ satisfies golden rule 1,
ŵᵀΣ(w − ŵ) = 0, then ‖b‖² = A − C with A = wᵀΣw, C = (w − ŵ)ᵀΣ(w − ŵ), and with s = ‖b‖/‖a‖
the MSE is A·g(s), g(s) = (1 + s²)/2 − s(√(1 − s²) + (π − arccos s)s)/π, strictly decreasing on
[0, 1] (g'(s) = −(πs − 2s·arccos s + √(1 − s²))/π < 0). So among compressors that ALL satisfy
golden rule 1 — every pruning mask (diagonal Σ_X), every assignment with its optimal centroids —
the MSE is an increasing function of the objective: same ranking, same argmin at every size.

What fails: Theorem 4 as stated only asks the objective's argmin to satisfy the rule. A class
may contain members violating it with lower MSE: e.g. s·ŵ for s > 1 (centroids scaled up),
which is still a quantization with k centroids, so Corollary 2 taken over ALL centroids is
false too: the MSE-optimal centroids are larger than the importance-weighted means.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rdcompress.errors import ConfigError
from rdcompress.theory.relu import (
    golden_rule_residual,
    importance_objective,
    mse_optimal_scale,
    relu_importance,
    relu_output_mse,
)

MAX_PRUNING_DIM = 16     # 2^16 masks
MAX_QUANT_CONFIGS = 200_000


@dataclass(frozen=True)
class ClassScores:
    """Every member of a compressor class with its scores."""

    w_hat: np.ndarray       # (n, m) compressed weights
    group: np.ndarray       # (n,) int, the constraint level (kept count, ...) of each member
    objective: np.ndarray   # (n,) (w − ŵ)ᵀ I_w (w − ŵ)
    mse: np.ndarray         # (n,) E_x[(σ(wᵀx) − σ(ŵᵀx))²], closed form
    residual: np.ndarray    # (n,) ŵᵀ I_w (w − ŵ), golden rule 1


@dataclass(frozen=True)
class ArgminComparison:
    group: int
    objective_argmin: int   # row index into ClassScores
    mse_argmin: int
    agree: bool             # the objective's argmin has the minimal MSE (up to rtol)
    mse_at_objective_argmin: float
    min_mse: float
    max_abs_residual: float  # over the group

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def score_class(w: np.ndarray, w_hat: np.ndarray, group: np.ndarray,
                sigma_x: np.ndarray) -> ClassScores:
    importance = relu_importance(sigma_x)
    return ClassScores(w_hat=w_hat, group=np.asarray(group),
                       objective=importance_objective(w, w_hat, importance),
                       mse=relu_output_mse(w, w_hat, sigma_x),
                       residual=golden_rule_residual(w, w_hat, importance))


def pruning_class(w: np.ndarray, sigma_x: np.ndarray) -> ClassScores:
    """All 2^m masks; group = number of kept weights."""
    m = np.asarray(w).size
    if m > MAX_PRUNING_DIM:
        raise ConfigError(f"m={m} weights means 2^{m} masks; use m <= {MAX_PRUNING_DIM}")
    masks = np.array(list(itertools.product([False, True], repeat=m)))   # (2^m, m)
    return score_class(w, masks * np.asarray(w, dtype=np.float64), masks.sum(axis=1), sigma_x)


def quantization_class(w: np.ndarray, sigma_x: np.ndarray, k: int) -> ClassScores:
    """All k^m assignments, each with its I_w-optimal centroids; group = clusters used.

    Optimal centroids for assignment matrix P (m, k): c = argmin (w − Pc)ᵀ I (w − Pc)
    = (Pᵀ I P)⁺ Pᵀ I w (weighted means when I is diagonal). They satisfy golden rule 1.
    """
    w = np.asarray(w, dtype=np.float64)
    m = w.size
    if k < 1 or k ** m > MAX_QUANT_CONFIGS:
        raise ConfigError(f"k={k}, m={m} gives k^m={k ** m} assignments; need 1 <= k and "
                          f"k^m <= {MAX_QUANT_CONFIGS}")
    importance = relu_importance(sigma_x)
    labels = np.array(list(itertools.product(range(k), repeat=m)))      # (n, m)
    onehot = (labels[:, :, None] == np.arange(k)).astype(np.float64)    # (n, m, k) = P
    gram = np.einsum("nmk,ml,nlj->nkj", onehot, importance, onehot)     # (n, k, k) PᵀIP
    rhs = np.einsum("nmk,ml,l->nk", onehot, importance, w)              # (n, k)    PᵀIw
    centroids = np.einsum("nkj,nj->nk", np.linalg.pinv(gram, hermitian=True), rhs)
    w_hat = np.einsum("nmk,nk->nm", onehot, centroids)                  # (n, m)
    used = (onehot.sum(axis=1) > 0).sum(axis=1)
    return score_class(w, w_hat, used, sigma_x)


def compare_argmins(scores: ClassScores, rtol: float = 1e-9) -> list[ArgminComparison]:
    """Per group, does the objective's argmin also minimize the MSE?"""
    out = []
    for group in np.unique(scores.group):
        rows = np.flatnonzero(scores.group == group)
        best_obj = rows[np.argmin(scores.objective[rows])]
        best_mse = rows[np.argmin(scores.mse[rows])]
        min_mse = float(scores.mse[best_mse])
        at_obj = float(scores.mse[best_obj])
        out.append(ArgminComparison(
            group=int(group), objective_argmin=int(best_obj), mse_argmin=int(best_mse),
            agree=bool(at_obj <= min_mse + rtol * max(abs(min_mse), 1e-300)),
            mse_at_objective_argmin=at_obj, min_mse=min_mse,
            max_abs_residual=float(np.abs(scores.residual[rows]).max())))
    return out


def rank_agreement(scores: ClassScores, rtol: float = 1e-9) -> bool:
    """True if sorting by the objective also sorts the MSE (ties within rtol)."""
    order = np.lexsort((scores.mse, scores.objective))
    mse_sorted = scores.mse[order]
    slack = rtol * np.abs(mse_sorted).max()
    return bool(np.all(np.diff(mse_sorted) >= -slack))


def scaled_counterexample(w: np.ndarray, w_hat: np.ndarray, sigma_x: np.ndarray) -> dict:
    """The class {s·ŵ : s ≥ 0} for a golden-rule ŵ (e.g. a pruning or a k-means solution).

    The objective is minimized at s = 1 (where golden rule 1 holds), the MSE at s* from
    ``mse_optimal_scale``; returns both with their objective, MSE and residual.
    """
    importance = relu_importance(sigma_x)
    s_star = float(mse_optimal_scale(w, w_hat, sigma_x))
    rows = {}
    for name, scale in (("objective_argmin", 1.0), ("mse_argmin", s_star)):
        candidate = scale * np.asarray(w_hat, dtype=np.float64)
        rows[name] = {"scale": scale,
                      "objective": float(importance_objective(w, candidate, importance)),
                      "mse": float(relu_output_mse(w, candidate, sigma_x)),
                      "residual": float(golden_rule_residual(w, candidate, importance))}
    return rows
