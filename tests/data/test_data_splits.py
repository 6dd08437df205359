"""Split arithmetic: splitmix64, largest-remainder allocation, stratified carve-outs, digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdcompress.data import load_dataset
from rdcompress.data.splits import allocate, shuffle_keys, splitmix64, stratified_carve
from rdcompress.errors import ConfigError


def test_splitmix64_reference_values():
    # splitmix64 seeded with state 0 (Vigna's reference generator): first two outputs.
    state = np.array([0, 0x9E3779B97F4A7C15], dtype=np.uint64)
    assert [int(v) for v in splitmix64(state)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4]


def test_allocate_hand_cases():
    assert allocate(np.array([5, 3, 2]), 5).tolist() == [3, 1, 1]  # 2.5, 1.5, 1.0: tie -> 0
    assert allocate(np.array([1, 1, 8]), 5).tolist() == [1, 0, 4]  # 0.5, 0.5, 4.0: tie -> 0
    assert allocate(np.array([4, 0, 6]), 10).tolist() == [4, 0, 6]
    with pytest.raises(ConfigError, match="cannot carve 11"):
        allocate(np.array([4, 0, 6]), 11)


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_stratified_carve_brute_force(seed):
    labels = np.array([0] * 7 + [1] * 13 + [2] * 5 + [3])[np.argsort(np.arange(26) * 7 % 26)]
    test, val, rest = stratified_carve(labels, [6, 5], seed)
    assert sorted(np.concatenate([test, val, rest]).tolist()) == list(range(26))
    keys = shuffle_keys(26, seed)
    counts = np.bincount(labels)
    for part, wanted in ((test, allocate(counts, 6)), (val, allocate(counts, 5))):
        assert np.bincount(labels[part], minlength=4).tolist() == wanted.tolist()
    for label in range(4):  # within a class: test takes the smallest keys, then val
        members = np.flatnonzero(labels == label)
        ordered = members[np.argsort(keys[members], kind="stable")].tolist()
        n_test, n_val = int(allocate(counts, 6)[label]), int(allocate(counts, 5)[label])
        assert sorted(ordered[:n_test]) == [i for i in test if labels[i] == label]
        assert sorted(ordered[n_test:n_test + n_val]) == [i for i in val if labels[i] == label]
    again = stratified_carve(labels, [6, 5], seed)
    assert all(np.array_equal(a, b) for a, b in zip(again, (test, val, rest), strict=True))


def test_seed_changes_the_carve():
    labels = np.arange(200) % 4
    a = stratified_carve(labels, [40], 1)[0]
    b = stratified_carve(labels, [40], 2)[0]
    assert len(a) == len(b) == 40 and not np.array_equal(a, b)


def test_digits_splits_partition_and_stratify():
    parts = {s: load_dataset("digits", s) for s in ("train", "val", "test", "trainval")}
    assert {s: len(d) for s, d in parts.items()} == {
        "train": 1079, "val": 359, "test": 359, "trainval": 1438}
    rows = {s: {tuple(x.flatten().tolist()) + (int(y),) for x, y in zip(d.images, d.labels,
                                                                      strict=True)}
            for s, d in parts.items()}
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"]
    assert rows["train"] | rows["val"] == rows["trainval"]
    for split in ("val", "test"):  # each class within one image of its 20% share
        counts = torch.bincount(parts[split].labels, minlength=10).numpy()
        full = torch.bincount(torch.cat([d.labels for d in parts.values()][:3]),
                              minlength=10).numpy()
        assert np.all(np.abs(counts - full * 0.2) < 1)
    again = load_dataset("digits", "val")
    assert torch.equal(again.images, parts["val"].images)
    with pytest.raises(ConfigError, match="split='validation'"):
        load_dataset("digits", "validation")
