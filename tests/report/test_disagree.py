"""Disagreement statistics against brute-force loops; thumbnails decode to their pixels."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
import torch

from rdcompress.errors import ConfigError
from rdcompress.report.disagree import (
    choose,
    confusion,
    disagreement,
    per_sample_kl,
    png_data_uri,
    top_k,
)


def _logits(seed: int, n: int = 40, c: int = 5) -> torch.Tensor:
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_per_sample_kl_matches_the_definition():
    a, b = _logits(0), _logits(1)
    kl = per_sample_kl(a, b)
    for i in range(len(a)):
        p = [math.exp(v) for v in a[i].tolist()]
        q = [math.exp(v) for v in b[i].tolist()]
        p = [v / sum(p) for v in p]
        q = [v / sum(q) for v in q]
        expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
        assert kl[i].item() == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert per_sample_kl(a, a).abs().max().item() < 1e-12


def test_confusion_counts_every_pair():
    rng = np.random.default_rng(0)
    first, second = (torch.as_tensor(rng.integers(0, 4, 100)) for _ in range(2))
    matrix = confusion(first, second, 4)
    for i in range(4):
        for j in range(4):
            pairs = zip(first.tolist(), second.tolist(), strict=True)
            assert matrix[i, j] == sum(1 for x, y in pairs if (x, y) == (i, j))
    with pytest.raises(ConfigError, match="must match"):
        confusion(first, second[:3], 4)


def test_top_k_is_sorted_and_sums_below_one():
    logits = _logits(2)
    top = top_k(logits, 3)
    probs = torch.softmax(logits, 1)
    for row, expected in zip(top, probs, strict=True):
        assert [c for c, _ in row] == expected.argsort(descending=True)[:3].tolist()
        assert [p for _, p in row] == sorted((p for _, p in row), reverse=True)
    assert len(top_k(logits[:, :2], 3)[0]) == 2  # fewer classes than k


def test_disagreement_lists_changed_samples_by_kl():
    reference = _logits(3)
    logits = reference.clone()
    logits[[4, 9, 17]] = _logits(4)[[4, 9, 17]] * 5  # three samples perturbed a lot
    labels = reference.argmax(1)
    result = disagreement(logits, reference, labels, gallery=10)
    changed = (logits.argmax(1) != reference.argmax(1)).nonzero().flatten().tolist()
    assert result["changed_count"] == len(changed)
    assert sorted(s["index"] for s in result["changed"]) == sorted(changed)
    kls = [s["kl"] for s in result["changed"]]
    assert kls == sorted(kls, reverse=True)
    matrix = np.array(result["confusion"])
    assert matrix.sum() == 40 and np.trace(matrix) == 40 - len(changed)
    assert result["per_class"]["original"] == [1.0 if n else 0.0
                                               for n in result["per_class"]["count"]]
    assert len(disagreement(logits, reference, labels, gallery=1)["changed"]) == min(1,
                                                                                    len(changed))


def test_png_data_uri_round_trips_pixels():
    from PIL import Image

    grey = np.arange(64, dtype=np.uint8).reshape(1, 8, 8) % 17  # digits: values 0..16
    uri = png_data_uri(grey, scale=16)
    assert uri.startswith("data:image/png;base64,")
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))
    assert image.shape == (8, 8)
    expected = np.rint(grey[0].astype(np.float64) * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(image, expected)
    rgb = np.random.default_rng(0).integers(0, 256, (3, 4, 5), dtype=np.uint8)
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(png_data_uri(rgb).split(",")[1]))))
    np.testing.assert_array_equal(image, rgb.transpose(1, 2, 0))
    with pytest.raises(ConfigError, match="C, H, W"):
        png_data_uri(np.zeros((2, 4, 4)))


def test_choose_takes_the_fronts_first_then_spreads():
    models = [{"id": i, "layers": {} if i != 5 else None} for i in range(20)]
    assert choose(models, [3, 7], limit=100) == [i for i in range(20) if i != 5]
    picked = choose(models, [3, 7], limit=5)
    assert len(picked) == 5 and {3, 7} <= set(picked) and 5 not in picked
    assert choose(models, [3, 7, 9], limit=2) == [3, 7]
    assert choose(models, [], limit=0) == []
