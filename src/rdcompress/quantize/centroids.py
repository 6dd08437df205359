"""Optimal centroid of one cluster, given its assignment (the k-means update step), vectorized.

For a cluster C the update minimizes Σ_{i∈C} I_i (w_i − c)² + H_i (w_i − c)⁴ over c:

* H = 0: c = Σ I w / Σ I (the weighted mean; Choi et al. 2016);
* H ≠ 0: the derivative set to zero is App. C.2's cubic
      (Σ4H) c³ − (Σ12Hw) c² + (Σ(12Hw² + 2I)) c − Σ(4Hw³ + 2Iw) = 0,
  whose discriminant Δ0 = b² − 3ac < 0, so it is strictly increasing with one real root;
* Σ I = Σ H = 0 (no importance at all): the plain mean, so the centroid stays inside the cluster.

All functions take per-cluster sums (shape (k,)) so that callers can get them from prefix sums of
sorted weights (contiguous clusters) or from ``np.bincount`` (arbitrary clusters). With Σ I w²
and Σ H w⁴ too, ``run_cost`` gives a run's minimal cost in O(1) (the optimal DP's step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUADRATIC_FIELDS = ("count", "w", "I", "Iw", "Iw2")
QUARTIC_FIELDS = (*QUADRATIC_FIELDS, "H", "Hw", "Hw2", "Hw3", "Hw4")


@dataclass
class ClusterSums:
    """Per-cluster moments, each (k,). Quartic fields are None when H is absent; Iw2 and Hw4
    are only needed for a run's cost (``run_cost``), not for its centroid."""

    count: np.ndarray  # number of weights
    w: np.ndarray  # Σ w
    I: np.ndarray  # Σ I
    Iw: np.ndarray  # Σ I w
    H: np.ndarray | None = None  # Σ H
    Hw: np.ndarray | None = None  # Σ H w
    Hw2: np.ndarray | None = None  # Σ H w²
    Hw3: np.ndarray | None = None  # Σ H w³
    Iw2: np.ndarray | None = None  # Σ I w²
    Hw4: np.ndarray | None = None  # Σ H w⁴

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> ClusterSums:
        """From stacked moments (F, k) in QUADRATIC_FIELDS or QUARTIC_FIELDS order."""
        fields = QUARTIC_FIELDS if rows.shape[0] == len(QUARTIC_FIELDS) else QUADRATIC_FIELDS
        return cls(**dict(zip(fields, rows, strict=True)))


def point_moments(w: np.ndarray, I: np.ndarray, H: np.ndarray | None):
    """Yield the per-point moment rows (n,) in QUADRATIC/QUARTIC_FIELDS order, one at a time
    (so that a caller can reduce each row before the next is made)."""
    yield np.ones_like(w)
    yield w
    yield I
    Iw = I * w
    yield Iw
    yield Iw * w  # I w²
    if H is not None:
        yield H
        Hw = H * w
        yield Hw
        Hw2 = Hw * w
        yield Hw2
        Hw3 = Hw2 * w
        yield Hw3
        yield Hw3 * w


def cluster_sums(
    w: np.ndarray, I: np.ndarray, H: np.ndarray | None, assignments: np.ndarray, k: int
) -> ClusterSums:
    """Moments of arbitrary (non-contiguous) clusters via bincount; w, I, H, assignments (n,)."""

    def total(values=None):
        return np.bincount(assignments, weights=values, minlength=k).astype(np.float64)

    sums = ClusterSums(count=total(), w=total(w), I=total(I), Iw=total(I * w))
    if H is not None:
        hw = H * w
        sums.H, sums.Hw, sums.Hw2, sums.Hw3 = total(H), total(hw), total(hw * w), total(hw * w * w)
    return sums


def refine_centroids(
    w: np.ndarray, I: np.ndarray, H: np.ndarray | None, assignments: np.ndarray,
    codebook: np.ndarray,
) -> np.ndarray:
    """Each cluster's optimal centroid (k,) recomputed from moments of w − c_j, its own frame.

    Moments about the layer's mean lose digits for a cluster far from it (the quartic root
    needs up to Σ H w³, and a near-triple root, I ≈ 0, turns a relative error ε of the cubic's
    coefficients into ε^(1/3)); about a point inside the cluster they do not.
    """
    local = w - codebook[assignments]  # (n,)
    sums = cluster_sums(local, I, H, assignments, codebook.size)
    return codebook + update_centroids(sums, np.zeros(codebook.size))


def run_cost(sums: ClusterSums) -> tuple[np.ndarray, np.ndarray]:
    """(c*, min_c Σ I (w − c)² + H (w − c)⁴) of each run from its moments (needs Iw2, Hw4).

    c* is ``update_centroids``'s (the cubic's root when Σ H > 0); the cost expands the binomials
    around the origin of the moments (callers centre w first), clamped at 0 against rounding.
    """
    c = update_centroids(sums, np.zeros_like(sums.I))
    cost = sums.Iw2 - c * (2.0 * sums.Iw - c * sums.I)
    H, Hw, Hw2, Hw3, Hw4 = sums.H, sums.Hw, sums.Hw2, sums.Hw3, sums.Hw4
    if H is not None and Hw is not None and Hw2 is not None and Hw3 is not None:
        cost = cost + Hw4 - c * (4.0 * Hw3 - c * (6.0 * Hw2 - c * (4.0 * Hw - c * H)))
    return c, np.maximum(cost, 0.0)


def update_centroids(sums: ClusterSums, previous: np.ndarray) -> np.ndarray:
    """New centroids (k,); an empty cluster keeps its previous centroid (it costs nothing)."""
    centroid = previous.astype(np.float64, copy=True)
    has_mass = sums.I > 0
    centroid[has_mass] = sums.Iw[has_mass] / sums.I[has_mass]
    plain = (~has_mass) & (sums.count > 0)
    centroid[plain] = sums.w[plain] / sums.count[plain]
    H, Hw, Hw2, Hw3 = sums.H, sums.Hw, sums.Hw2, sums.Hw3
    if H is not None and Hw is not None and Hw2 is not None and Hw3 is not None:
        quartic = H > 0
        if np.any(quartic):
            centroid[quartic] = quartic_root(
                H[quartic], Hw[quartic], Hw2[quartic], Hw3[quartic], sums.I[quartic],
                sums.Iw[quartic],
            )
    return centroid


def quartic_root(sH, sHw, sHw2, sHw3, sI, sIw) -> np.ndarray:
    """The single real root of App. C.2's cubic, for clusters with Σ H > 0 (arrays (k,)).

    Substituting c = m + t with m = ΣHw/ΣH (the H-weighted mean) gives the depressed cubic
    t³ + p t + q = 0 with p = 3·Var_H(w) + ΣI/(2ΣH) >= 0, so (q/2)² + (p/3)³ >= 0 and Cardano's
    formula has one real branch. Two Newton steps on the full cubic polish the rounding.
    """
    a, b = 4.0 * sH, -12.0 * sHw
    c, d = 12.0 * sHw2 + 2.0 * sI, -(4.0 * sHw3 + 2.0 * sIw)
    B, C, D = b / a, c / a, d / a
    m = -B / 3.0
    p = np.maximum(C - B * B / 3.0, 0.0)  # >= 0 in exact arithmetic (Cauchy-Schwarz)
    q = 2.0 * B**3 / 27.0 - B * C / 3.0 + D
    s = np.sqrt((q / 2.0) ** 2 + (p / 3.0) ** 3)
    # The branch of larger magnitude avoids cancellation; t = u − p/(3u).
    u = np.cbrt(-q / 2.0 - np.where(q >= 0, s, -s))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(u != 0, u - p / (3.0 * u), 0.0)
    x = m + t
    for _ in range(2):  # Newton on a x³ + b x² + c x + d; its derivative is > 0 everywhere
        f = ((a * x + b) * x + c) * x + d
        fp = (3.0 * a * x + 2.0 * b) * x + c
        x = np.where(fp > 0, x - f / np.where(fp > 0, fp, 1.0), x)
    return x
