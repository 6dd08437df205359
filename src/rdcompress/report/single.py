"""A single ``.rdz`` as a RUN: measured here against its original, as a sweep would have.

A sweep directory holds its rows; a lone file does not, so ``single_sweep`` evaluates it on the
given data against the given original and returns the same ``sweep.json`` document a one-run
sweep would write (rows as ``results.SweepRow``), so that the rest of the report reads both alike.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from rdcompress.errors import ConfigError


def single_sweep(path: str | Path, original: str | None, data: str | None,
                 data_dir: str | None = None, eval_limit: int | None = None,
                 trust_code: bool = False) -> dict[str, Any]:
    """The ``sweep.json``-shaped document of one ``.rdz`` file evaluated against ``original``
    (a model source as the CLI's MODEL reads it) on the test split of ``data``."""
    from rdcompress import __version__
    from rdcompress._io import state_dict_sha256
    from rdcompress.api import open_model
    from rdcompress.codec import inspect_rdz, read_rdz_tensors
    from rdcompress.compress import load
    from rdcompress.compress.registry import config_from_dict, get
    from rdcompress.data import load_dataset
    from rdcompress.evaluate import classification_metrics, collect_outputs
    from rdcompress.models import is_zoo_spec
    from rdcompress.pipeline import make_loader
    from rdcompress.results import SweepRow, column_docs
    from rdcompress.sweep import evenly_spaced

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"RUN {str(path)!r} is not a file; give a sweep directory or a .rdz")
    if original is None:
        raise ConfigError(f"RUN {file} is a single .rdz: say which model it was compressed from "
                          "with --original MODEL (e.g. the .safetensors that 'rdcompress "
                          "train' wrote, beside its .json sidecar)")
    start = time.perf_counter()
    loaded = open_model(original, trust_code=trust_code)
    dataset = data or loaded.dataset
    if dataset is None:
        raise ConfigError(f"no dataset known for {original}: give --data")
    manifest, _ = read_rdz_tensors(file)
    weights_sha256 = state_dict_sha256(dict(loaded.module.named_parameters()))
    if manifest.get("weights_sha256") not in (None, weights_sha256):
        raise ConfigError(f"{file} was compressed from other weights than {original} (weight "
                          "hashes differ); give the model it was made from with --original")
    test = evenly_spaced(load_dataset(dataset, split="test", data_dir=data_dir), eval_limit)
    loader = make_loader(test, loaded.preprocessing, 512)
    reference_logits, labels = collect_outputs(loaded.module, loader)
    module = load(file, model=None if is_zoo_spec(loaded.spec) else copy.deepcopy(loaded.module),
                  trust_code=trust_code)
    logits, _ = collect_outputs(module, loader)
    metrics = classification_metrics(logits, labels, reference_logits)
    summary = inspect_rdz(file)
    settings = dict(manifest.get("settings") or {})
    method = str(manifest.get("method") or settings.get("method") or "unknown")
    try:
        spec = get(method)
        config = config_from_dict(settings)
        setting = spec.describe(config)
        value = getattr(config, spec.sweep.field) if spec.sweep else 0.0
    except (ConfigError, TypeError, AttributeError):  # a method this version lacks
        setting, value = file.stem, 0.0
    row = SweepRow(
        method=method, objective=str(manifest.get("objective") or "-"), setting=setting,
        value=float(value) if isinstance(value, (int, float)) else 0.0,
        paper_ratio=summary.paper_ratio, file_ratio=summary.ratio,
        file_bytes=summary.file_bytes, bits_per_weight=summary.bits_per_weight,
        accuracy=metrics.accuracy, cross_entropy=metrics.cross_entropy, kl=metrics.kl,
        reverse_kl=metrics.reverse_kl, agreement=metrics.agreement,
        seconds=round(time.perf_counter() - start, 3), seed=0, temperature="-", hessian_mu=0.0,
        config=settings).to_dict()
    return {
        "format": 1, "rdcompress": __version__,
        "config": {"model": original, "data": dataset, "data_dir": data_dir,
                   "eval_split": "test", "eval_limit": eval_limit, "seed": None,
                   "trust_code": trust_code, "file": str(file)},
        "model": {"source": original, "weights": None, "spec": loaded.spec,
                  "weights_sha256": weights_sha256, "dataset": dataset},
        "reference": classification_metrics(reference_logits, labels).to_dict(),
        "columns": column_docs(), "rows": [row]}
