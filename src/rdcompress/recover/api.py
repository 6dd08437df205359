"""``recover(file_or_compressed, data, config, original)``: give back the accuracy compression
took, and keep the file honest.

>>> result = recover("q4.rdz", data=train_loader, config=RecoverConfig(epochs=2),
...                  original=model)
>>> result.save("q4-recovered.rdz")      # same indices and masks, trained codebooks and biases
>>> rdcompress.load("q4-recovered.rdz")   # == result.model, bit for bit

Steps: level 0 (bias correction, then BatchNorm re-estimation: no gradients), then fine-tuning
of the leaves of ``TiedWeights`` (codebooks, kept values, raw tensors) by the recovery loss,
then BatchNorm re-estimation again. The result's model is loaded from the very entries
``save`` writes, so what was evaluated is what the file decodes to.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from rdcompress._io import state_dict_sha256
from rdcompress.batches import BatchFn
from rdcompress.codec import CODERS, RawTensor, RdzSummary, read_rdz_tensors, write_rdz
from rdcompress.errors import ConfigError, ModelError
from rdcompress.evaluate import classification_metrics, collect_outputs
from rdcompress.recover.config import RecoverConfig
from rdcompress.recover.level0 import correct_bias, reestimate_batchnorm
from rdcompress.recover.structure import TiedWeights, decoded_state
from rdcompress.recover.training import finetune


@dataclass
class RecoveryResult:
    """A recovered model and the codec entries that store it."""

    model: nn.Module  # eval mode; its state_dict is exactly what ``save``'s file decodes to
    tensors: list  # codec entries, in the input file's order
    manifest: dict  # the input's manifest plus "recovery" (settings and what level 0 did)
    coder: str  # the input file's entropy coder
    history: list[dict] = field(default_factory=list)  # per epoch (epoch 0: after level 0)
    level0: dict = field(default_factory=dict)  # {"batchnorm": [...], "bias": [...]}
    source: str | None = None  # the input path, never overwritten

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def save(self, path: str | os.PathLike[str]) -> RdzSummary:
        """Write the recovered ``.rdz`` atomically; refuses to overwrite the input file."""
        if self.source is not None and _same_file(path, self.source):
            raise ConfigError(f"output {os.fspath(path)!r} is the input file {self.source!r}; "
                              "recovery never overwrites its input: choose another path")
        return write_rdz(path, self.tensors, self.manifest, coder=self.coder)


def recover(source: Any, data: Any, config: RecoverConfig | None = None,
            original: nn.Module | None = None, *, model: nn.Module | None = None,
            eval_data: Any = None, checkpoint: str | os.PathLike[str] | None = None,
            device: str | torch.device = "cpu", batch_fn: BatchFn | None = None,
            trust_code: bool = False) -> RecoveryResult:
    """Recover the accuracy of a compressed model inside its structure.

    Args:
        source: a ``.rdz`` path, or a ``CompressedModel`` from ``rdcompress.compress``.
        data: training/calibration data: a DataLoader of (inputs, labels) batches (labels are
            read only by the "task" and "mix" losses), or a Dataset (loaded with
            ``config.batch_size``, shuffled by the seed).
        config: ``RecoverConfig`` (default: one epoch of distillation, lr 1e-4, BatchNorm
            re-estimation on, bias correction off).
        original: the uncompressed model: the teacher of "distill"/"mix", and W of bias
            correction. Not modified.
        model: the architecture, for a source whose manifest names none (default: the
            original's, else the manifest's zoo model).
        eval_data: held-out batches; accuracy, agreement and KL with the original are
            measured after level 0 and after every epoch (``history``).
        checkpoint: a file to resume from and to write after every epoch.
        device: where to train ("cpu", "cuda", ...); the result is on the CPU.
    """
    config = config or RecoverConfig()
    if config.needs_original and original is None:
        raise ConfigError(
            f"recovery with loss={config.loss!r} and bias_correction={config.bias_correction} "
            "needs the original model: pass original=<the uncompressed model>, or use "
            "RecoverConfig(loss='task', bias_correction=False)")
    tensors, manifest, coder, path = _read_source(source)
    module = _architecture(source, path, tensors, manifest, model or original, trust_code)
    if original is not None:
        _check_same_architecture(module, original)
        original = copy.deepcopy(original).to(device).eval()
    loader = _loader(data, config)
    module.to(device)
    frozen = {t.name for t in tensors if not isinstance(t, RawTensor)}
    level0: dict[str, Any] = {"bias": [], "batchnorm": []}
    if config.bias_correction:
        assert original is not None
        level0["bias"] = [c.to_dict() for c in correct_bias(
            original, module, loader, batch_fn=batch_fn, device=device, frozen=frozen,
            mode=config.bias_mode, max_batches=config.calibration_batches)]
    if config.bn:
        level0["batchnorm"] = reestimate_batchnorm(module, loader, batch_fn=batch_fn,
                                                   device=device,
                                                   max_batches=config.calibration_batches)
    tied = TiedWeights(module.cpu(), tensors, manifest).to(device)
    module.to(device)
    evaluate = _evaluator(eval_data, original, device, batch_fn)
    history = [{"epoch": 0, **evaluate(module)}] if evaluate is not None else []
    if config.epochs > 0:
        if not list(tied.parameters()):
            raise ConfigError("the file has no trainable tensor (every parameter is a frozen "
                              "composite); use epochs=0")
        fingerprint = _fingerprint(config, module, len(tensors))
        history += finetune(module, tied, loader, config, original=original, device=device,
                            batch_fn=batch_fn, checkpoint=checkpoint, fingerprint=fingerprint,
                            evaluate=evaluate)
        if config.bn and level0["batchnorm"]:
            reestimate_batchnorm(module, loader, batch_fn=batch_fn, device=device,
                                 max_batches=config.calibration_batches)
    module.cpu()
    entries = tied.cpu().entries(module)
    new_manifest = copy.deepcopy(manifest)
    new_manifest["recovery"] = {
        "settings": config.to_dict(),
        "bias_corrected": sum(c["target"] != "skipped" for c in level0["bias"]),
        "batchnorm_reestimated": len(level0["batchnorm"]),
        "frozen": tied.frozen,
    }
    module.load_state_dict(decoded_state(entries, new_manifest), strict=True)
    module.eval()
    return RecoveryResult(module, entries, new_manifest, coder, history, level0, path)


def _read_source(source: Any) -> tuple[list, dict, str, str | None]:
    """(codec entries, manifest, coder, path or None) of a path or a CompressedModel."""
    from rdcompress.compress import CompressedModel  # the compress layer sits beside us

    if isinstance(source, CompressedModel):
        return list(source.tensors), copy.deepcopy(source.manifest), source.coder, None
    if not isinstance(source, str | os.PathLike):
        raise ConfigError(f"source must be a .rdz path or a CompressedModel, got "
                          f"{type(source).__name__}")
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise ConfigError(f"compressed model {path!r} does not exist (or is not a file); give "
                          "the .rdz file written by 'rdcompress compress'")
    manifest, tensors = read_rdz_tensors(path)
    settings = manifest.get("settings")
    coder = settings.get("coder") if isinstance(settings, dict) else None
    return list(tensors), manifest, coder if coder in CODERS else "ans", path


def _architecture(source: Any, path: str | None, tensors: list, manifest: dict,
                  model: nn.Module | None, trust_code: bool) -> nn.Module:
    """A new module holding the source's decoded weights (``load`` checks the fit)."""
    if path is not None:
        from rdcompress.compress import load

        return load(path, model=model, trust_code=trust_code).train()
    if model is None:
        spec = manifest.get("model")
        if not spec:
            raise ConfigError("the compressed model records no architecture: pass model= or "
                              "original=")
        from rdcompress.models import build_from_spec

        model = build_from_spec(spec, trust_code=trust_code, source="the compressed model")
    module = copy.deepcopy(model)
    state = decoded_state(tensors, manifest)
    expected = module.state_dict()
    if set(expected) != set(state) or any(expected[k].shape != state[k].shape for k in state):
        raise ModelError("the compressed model does not fit the given architecture (names or "
                         "shapes differ); pass the model it was compressed from")
    module.load_state_dict(state, strict=True)
    return module


def _check_same_architecture(module: nn.Module, original: nn.Module) -> None:
    ours, theirs = module.state_dict(), original.state_dict()
    different = sorted(set(ours) ^ set(theirs)) or \
        [k for k in ours if ours[k].shape != theirs[k].shape]
    if different:
        raise ModelError(f"the original model is not the compressed model's architecture "
                         f"(entries differ: {different[:5]}); pass the model the file was "
                         "compressed from")


def _loader(data: Any, config: RecoverConfig) -> Any:
    if isinstance(data, Dataset) and not isinstance(data, DataLoader):
        generator = torch.Generator().manual_seed(config.seed)
        return DataLoader(data, batch_size=config.batch_size, shuffle=True,
                          generator=generator)
    if data is None:
        raise ConfigError("recovery needs data: a DataLoader of (inputs, labels) batches")
    return data


def _evaluator(eval_data: Any, original: nn.Module | None, device: Any,
               batch_fn: BatchFn | None) -> Any:
    if eval_data is None:
        return None
    reference = None
    if original is not None:
        reference = collect_outputs(original, eval_data, device, batch_fn)[0]

    def evaluate(module: nn.Module) -> dict:
        logits, labels = collect_outputs(module, eval_data, device, batch_fn)
        metrics = classification_metrics(logits, labels, reference)
        row = {"accuracy": metrics.accuracy}
        if reference is not None:
            row.update(agreement=metrics.agreement, kl=metrics.kl)
        return row

    return evaluate


def _fingerprint(config: RecoverConfig, module: nn.Module, entries: int) -> str:
    """What a checkpoint must match: settings and the weights training starts from."""
    text = json.dumps({"config": config.to_dict(), "entries": entries,
                       "start": state_dict_sha256(module.state_dict())},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)
