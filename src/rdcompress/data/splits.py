"""Deterministic, seeded, class-stratified splits: pure functions on label arrays.

The order within a class comes from a splitmix64 hash of (seed, index), written out in numpy
uint64 arithmetic, so the splits are identical on every machine and numpy version (numpy's own
random streams carry no such promise). Per-class counts are allocated by the largest-remainder
method, so the total carve-out is exactly the one asked for and each class gets its share.
"""

from __future__ import annotations

import numpy as np

from rdcompress.errors import ConfigError

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer applied elementwise to a uint64 array (same shape)."""
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def shuffle_keys(count: int, seed: int) -> np.ndarray:
    """(count,) uint64 pseudo-random sort keys, a pure function of (index, seed)."""
    with np.errstate(over="ignore"):
        salt = splitmix64(np.array([seed % (1 << 64)], dtype=np.uint64))[0]
        return splitmix64(np.arange(count, dtype=np.uint64) ^ salt)


def allocate(class_counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes proportionally to ``class_counts`` (largest remainder).

    Returns (num_classes,) int64 with sum == total and 0 <= result <= class_counts. Ties in the
    remainders go to the lower class index.
    """
    class_counts = np.asarray(class_counts, dtype=np.int64)
    grand = int(class_counts.sum())
    if not 0 <= total <= grand:
        raise ConfigError(f"cannot carve {total} samples out of {grand}; expected 0..{grand}")
    if grand == 0:
        return np.zeros_like(class_counts)
    exact = class_counts * total  # numerators of class_counts * total / grand
    base = exact // grand
    remainder = exact - base * grand
    missing = total - int(base.sum())
    order = np.lexsort((np.arange(len(class_counts)), -remainder))  # largest remainder first
    base[order[:missing]] += 1
    return base


def stratified_carve(labels: np.ndarray, counts: list[int], seed: int) -> list[np.ndarray]:
    """Carve disjoint, class-stratified subsets of sizes ``counts`` out of ``labels``.

    labels: (N,) integer class ids. Returns one sorted int64 index array per entry of
    ``counts`` plus a last array with the remaining indices, all disjoint and covering 0..N-1.
    """
    labels = np.asarray(labels).astype(np.int64)
    keys = shuffle_keys(len(labels), seed)
    classes, class_counts = np.unique(labels, return_counts=True)
    per_class = [allocate(class_counts, count) for count in counts]  # each (num_classes,)
    taken: list[list[np.ndarray]] = [[] for _ in range(len(counts) + 1)]
    for c, label in enumerate(classes):
        members = np.flatnonzero(labels == label)
        members = members[np.argsort(keys[members], kind="stable")]
        start = 0
        for part, allocation in enumerate(per_class):
            stop = start + int(allocation[c])
            taken[part].append(members[start:stop])
            start = stop
        taken[-1].append(members[start:])
    return [np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
            for parts in taken]


def train_val_indices(labels: np.ndarray, val_count: int, seed: int):
    """(train_idx, val_idx) of a canonical train set: a stratified carve-out of ``val_count``."""
    val, train = stratified_carve(labels, [val_count], seed)
    return train, val


def fraction_count(total: int, fraction: float) -> int:
    """round(total * fraction), half up, in exact integer arithmetic for the usual fractions."""
    return int(np.floor(total * fraction + 0.5))
