"""Where a compressed model disagrees with its original, sample by sample.

``evaluate_sweep`` loads a sweep's original model and evaluation set (as the sweep did: same
split, same evenly spaced subset), runs each chosen ``.rdz`` and keeps, per model: the confusion
matrix of original vs compressed predictions, per-class accuracy before and after, and the
samples whose prediction changed, sorted by their KL. Thumbnails of those samples are shared by
all models (``thumbnails``: {sample index: PNG data URI}).

The pure functions at the bottom (``per_sample_kl``, ``confusion``, ``top_k``, ``png_data_uri``)
work on arrays and are tested against brute-force loops.
"""

from __future__ import annotations

import base64
import copy
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rdcompress.errors import ConfigError


@dataclass
class Evaluation:
    """Per-model disagreement data of one sweep, and the thumbnails its galleries use."""

    classes: list[str]
    num_samples: int
    by_model: dict[int, dict[str, Any]] = field(default_factory=dict)  # {model id: ...}
    thumbnails: dict[int, str] = field(default_factory=dict)  # {sample index: data URI}
    weights_match: bool | None = None  # the original's weight hash equals sweep.json's


def choose(models: Sequence[dict[str, Any]], front_ids: Sequence[int], limit: int) -> list[int]:
    """Ids of at most ``limit`` models to evaluate: every Pareto-front model first (they are
    what a reader clicks), then the others spread evenly over the list."""
    available = [m["id"] for m in models if m.get("layers") is not None]
    first = [i for i in dict.fromkeys(front_ids) if i in set(available)]
    rest = [i for i in available if i not in set(first)]
    room = max(limit - len(first), 0)
    if room < len(rest) and room > 0:
        picks = np.unique(np.linspace(0, len(rest) - 1, room).round().astype(np.int64))
        rest = [rest[i] for i in picks]
    return sorted((first + rest[:room])[:limit])


def evaluate_sweep(sweep: dict[str, Any], models: Sequence[dict[str, Any]], ids: Sequence[int],
                   gallery: int = 16) -> Evaluation:
    """Disagreement data of the models ``ids`` (of ``models``) from the sweep entry ``sweep``.

    ``sweep``: collect's sweep entry (config, model: source/weights/spec/dataset). Raises
    ConfigError naming what is missing when the original model or its data cannot be opened.
    """
    from rdcompress._io import state_dict_sha256
    from rdcompress.api import open_model
    from rdcompress.compress import load
    from rdcompress.data import load_dataset
    from rdcompress.evaluate import collect_outputs
    from rdcompress.models import is_zoo_spec
    from rdcompress.pipeline import make_loader
    from rdcompress.sweep import evenly_spaced

    config, info = sweep.get("config", {}), sweep.get("model", {})
    source = info.get("source")
    if not source:
        raise ConfigError(f"{sweep['path']}: sweep.json names no original model; use "
                          "--evaluate 0 for a report without the disagreement section")
    beside = Path(sweep["path"]) / Path(source).name
    if not Path(source).exists() and beside.is_file():
        source = str(beside)  # a relative path from another working directory, or a moved sweep
    original = open_model(source, weights=info.get("weights"),
                          trust_code=bool(config.get("trust_code")))
    dataset_name = info.get("dataset") or config.get("data") or original.dataset
    if not dataset_name:
        raise ConfigError(f"{sweep['path']}: sweep.json names no dataset; use --evaluate 0 "
                          "for a report without the disagreement section")
    test = evenly_spaced(load_dataset(dataset_name, split=config.get("eval_split", "test"),
                                       data_dir=config.get("data_dir")),
                          config.get("eval_limit"))
    loader = make_loader(test, original.preprocessing, 512)
    reference, labels = collect_outputs(original.module, loader)
    result = Evaluation(classes=[str(c) for c in test.classes], num_samples=len(labels))
    expected = info.get("weights_sha256")
    if expected:
        actual = state_dict_sha256(dict(original.module.named_parameters()))
        result.weights_match = actual == expected
    by_id = {m["id"]: m for m in models}
    for model_id in ids:
        model = by_id[model_id]
        module = load(model["path"], model=None if is_zoo_spec(original.spec)
                      else copy.deepcopy(original.module))
        logits, _ = collect_outputs(module, loader)
        result.by_model[model_id] = disagreement(logits, reference, labels, gallery)
    needed = sorted({s["index"] for d in result.by_model.values() for s in d["changed"]})
    images = getattr(test, "images", None)
    if images is not None and images.dim() == 4 and images.shape[1] in (1, 3):
        result.thumbnails = {i: png_data_uri(images[i].numpy(), test.scale) for i in needed}
    return result


def disagreement(logits: torch.Tensor, reference: torch.Tensor, labels: torch.Tensor,
                 gallery: int) -> dict[str, Any]:
    """One model's disagreement with the original (logits (N, C) each, labels (N,)).

    confusion[i][j]: samples the original predicts i and the compressed model j. per_class:
    accuracy of both per true class. changed: up to ``gallery`` samples whose prediction
    changed, highest KL(f_compressed || f_original) first, with both models' top-3.
    """
    kl = per_sample_kl(logits, reference)  # (N,)
    predicted, original = logits.argmax(1), reference.argmax(1)
    classes = logits.shape[1]
    changed = torch.nonzero(predicted != original).flatten()
    order = changed[torch.argsort(kl[changed], descending=True, stable=True)][:gallery]
    top_c, top_o = top_k(logits, 3), top_k(reference, 3)
    counts = torch.bincount(labels, minlength=classes).clamp(min=1).double()
    right_c = torch.bincount(labels[predicted == labels], minlength=classes).double()
    right_o = torch.bincount(labels[original == labels], minlength=classes).double()
    return {
        "confusion": confusion(original, predicted, classes).tolist(),
        "changed_count": int(len(changed)),
        "per_class": {"original": (right_o / counts).round(decimals=4).tolist(),
                      "compressed": (right_c / counts).round(decimals=4).tolist(),
                      "count": torch.bincount(labels, minlength=classes).tolist()},
        "changed": [{"index": int(i), "label": int(labels[i]), "kl": _sig(float(kl[i])),
                     "original": top_o[int(i)], "compressed": top_c[int(i)]} for i in order],
    }


def per_sample_kl(logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """KL(softmax(logits) || softmax(reference)) per sample (nats): (N, C), (N, C) -> (N,)."""
    log_p = F.log_softmax(logits.double(), dim=1)
    log_q = F.log_softmax(reference.double(), dim=1)
    return (log_p.exp() * (log_p - log_q)).sum(1)


def confusion(first: torch.Tensor, second: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, classes) int64 counts: [i, j] = #samples with first == i and second == j."""
    if first.shape != second.shape:
        raise ConfigError(f"predictions of shapes {tuple(first.shape)} and "
                          f"{tuple(second.shape)} must match")
    flat = first.long() * classes + second.long()
    return torch.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def top_k(logits: torch.Tensor, k: int) -> list[list[list[float]]]:
    """Per sample, the ``k`` most probable classes as [[class, probability], ...]."""
    probs = F.softmax(logits.double(), dim=1)
    values, indices = probs.topk(min(k, probs.shape[1]), dim=1)
    return [[[int(c), round(float(p), 4)] for c, p in zip(row_i, row_v, strict=True)]
            for row_i, row_v in zip(indices.tolist(), values.tolist(), strict=True)]


def png_data_uri(image: np.ndarray, scale: float = 255.0) -> str:
    """A ``data:image/png;base64,...`` URI of one image (C, H, W) with pixel = value / scale
    in [0, 1] (C = 1: grey, C = 3: RGB), at its own resolution (the page scales it up)."""
    from PIL import Image

    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ConfigError(f"an image must be (C, H, W) with C in (1, 3); got {image.shape}")
    pixels = np.clip(np.rint(image.astype(np.float64) * (255.0 / scale)), 0, 255)
    pixels = pixels.astype(np.uint8).transpose(1, 2, 0)  # (H, W, C)
    picture = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _sig(value: float, digits: int = 4) -> float:
    return float(f"{value:.{digits}g}") if math.isfinite(value) else value
