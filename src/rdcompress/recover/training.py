"""Fine-tuning inside the structure: the leaves of ``TiedWeights`` trained by a recovery loss.

The forward pass is ``torch.func.functional_call(model, tied.weights(), inputs)``: every
parameter is recomputed from the leaves each step, so masks stay exactly zero and quantized
weights stay tied to their codebooks by construction. BatchNorm statistics and other buffers
live in ``model`` as usual.

Determinism and resuming: epoch e shuffles and draws dropout from a seed that depends only on
(config.seed, e) (the global RNG inside a forked RNG scope, and the DataLoader's own generator
when it has one), and the learning rate from the global step. A checkpoint written after every
epoch (leaves, buffers, optimizer, step, history) therefore resumes an interrupted run to the
same result, bit for bit, as an uninterrupted one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from rdcompress._io import atomic_write
from rdcompress.batches import BatchFn, unpack_batch
from rdcompress.errors import CheckpointError, ConfigError, NonFiniteError
from rdcompress.progress import progress
from rdcompress.recover.config import RecoverConfig
from rdcompress.recover.losses import recovery_loss
from rdcompress.recover.structure import TiedWeights

CHECKPOINT_FORMAT = "rdcompress-recover-checkpoint-1"


def epoch_seed(seed: int, epoch: int) -> int:
    """The RNG seed of epoch ``epoch`` (0-based): a function of (seed, epoch) only."""
    return (seed * 1_000_003 + epoch * 7919 + 1) % (2**63 - 1)


def learning_rate(config: RecoverConfig, step: int, total_steps: int) -> float:
    """Cosine decay from ``config.lr`` to 0 over ``total_steps`` (or constant)."""
    if config.schedule == "constant" or total_steps <= 0:
        return config.lr
    return config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))


def _optimizer(config: RecoverConfig, leaves: list[nn.Parameter]) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(leaves, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(leaves, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


@torch.no_grad()
def write_back(model: nn.Module, tied: TiedWeights) -> None:
    """Copy the weights the leaves define into ``model``'s parameters."""
    params = dict(model.named_parameters())
    for name, weight in tied.weights().items():
        params[name].copy_(weight)


def finetune(model: nn.Module, tied: TiedWeights, data: Iterable, config: RecoverConfig, *,
             original: nn.Module | None = None, device: str | torch.device = "cpu",
             batch_fn: BatchFn | None = None, checkpoint: str | os.PathLike[str] | None = None,
             fingerprint: str = "",
             evaluate: Callable[[nn.Module], dict] | None = None) -> list[dict[str, Any]]:
    """Train ``tied``'s leaves for ``config.epochs`` epochs; returns one history row per epoch.

    ``model`` (on ``device``) ends with the trained weights written into it. ``evaluate``
    (optional) is called on ``model`` after every epoch; its dict joins the history row.
    ``checkpoint``: a file written after every epoch; if it exists when the run starts (same
    ``fingerprint``: the same file, settings and data size), training resumes from it.
    """
    try:
        steps_per_epoch = len(data)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError("the training data must have a length (a DataLoader over a sized "
                          "dataset): the learning-rate schedule and checkpoints count steps") \
            from None
    if steps_per_epoch == 0:
        raise ConfigError("the training data is empty")
    total_steps = config.epochs * steps_per_epoch
    model.requires_grad_(False)  # only the leaves train
    leaves = list(tied.parameters())
    optimizer = _optimizer(config, leaves)
    if original is not None:
        original.eval()
    start_epoch, step = 0, 0
    history: list[dict[str, Any]] = []
    if checkpoint is not None and Path(checkpoint).exists():
        start_epoch, step, history = _resume(checkpoint, fingerprint, tied, model, optimizer)
    for epoch in range(start_epoch, config.epochs):
        began = time.perf_counter()
        with torch.random.fork_rng(devices=_rng_devices(device)):
            torch.manual_seed(epoch_seed(config.seed, epoch))
            generator = getattr(data, "generator", None)
            if isinstance(generator, torch.Generator):
                generator.manual_seed(epoch_seed(config.seed, epoch))
            # the iterator is made here, after the reseed: DataLoader draws its base seed
            # from its generator when an iterator is created (tqdm wrapping the loader itself
            # would create one earlier)
            row, step = _epoch(model, tied, iter(data), config, optimizer, original, device,
                               batch_fn, step, total_steps, epoch, steps_per_epoch)
        write_back(model, tied)
        row["seconds"] = time.perf_counter() - began
        if evaluate is not None:
            row.update(evaluate(model))
        history.append(row)
        if checkpoint is not None:
            _save(checkpoint, fingerprint, epoch + 1, step, tied, model, optimizer, history)
    write_back(model, tied)
    return history


def _rng_devices(device: str | torch.device) -> list:
    device = torch.device(device)
    return [device] if device.type == "cuda" else []


def _epoch(model: nn.Module, tied: TiedWeights, data: Iterator, config: RecoverConfig,
           optimizer: torch.optim.Optimizer, original: nn.Module | None, device: Any,
           batch_fn: BatchFn | None, step: int, total_steps: int, epoch: int,
           steps_per_epoch: int) -> tuple[dict[str, Any], int]:
    model.train(config.train_mode)
    loss_sum, correct, seen = 0.0, 0, 0
    bar = progress(data, desc=f"recover epoch {epoch + 1}/{config.epochs}",
                   total=steps_per_epoch, unit="batch")
    for batch in bar:
        inputs, labels = unpack_batch(batch, batch_fn)
        inputs = inputs.to(device)
        labels = None if labels is None else labels.to(device)
        teacher = None
        if original is not None and config.loss != "task":
            with torch.no_grad():
                teacher = inputs(original)
        student = functional_call(model, tied.weights(), inputs.args, inputs.kwargs)
        loss = recovery_loss(config.loss, student, labels, teacher, config.temperature,
                             config.mix_weight)
        if not torch.isfinite(loss):
            raise NonFiniteError(f"the recovery loss became {float(loss)} at epoch {epoch + 1}, "
                                 f"step {step}; lower the learning rate (lr={config.lr})")
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step, total_steps)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        size = inputs.batch_size
        loss_sum += float(loss.detach()) * size
        seen += size
        if labels is not None and labels.dim() == 1 and not labels.is_floating_point():
            correct += int((student.detach().argmax(1) == labels).sum())
        postfix = {"loss": f"{loss_sum / seen:.4f}"}
        if labels is not None:
            postfix["acc"] = f"{correct / seen:.4f}"
        bar.set_postfix(postfix)
    row: dict[str, Any] = {"epoch": epoch + 1, "loss": loss_sum / max(seen, 1)}
    if correct or config.loss != "distill":
        row["train_accuracy"] = correct / max(seen, 1)
    return row, step


def _save(path: str | os.PathLike[str], fingerprint: str, epochs_done: int, step: int,
          tied: TiedWeights, model: nn.Module, optimizer: torch.optim.Optimizer,
          history: list[dict]) -> None:
    state = {
        "format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "epochs_done": epochs_done,
        "step": step, "leaves": {k: v.detach().cpu() for k, v in tied.state_dict().items()},
        "buffers": {k: v.detach().cpu() for k, v in model.named_buffers()},
        "optimizer": optimizer.state_dict(), "history": history,
    }
    with atomic_write(path, "wb") as handle:
        torch.save(state, handle)


def _resume(path: str | os.PathLike[str], fingerprint: str, tied: TiedWeights,
            model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, int, list]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for foreign/corrupt files
        raise CheckpointError(f"recovery checkpoint {os.fspath(path)!r} cannot be read "
                              f"({type(error).__name__}); delete it to start over") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{os.fspath(path)!r} is not a recovery checkpoint; choose another "
                              "checkpoint path")
    if state["fingerprint"] != fingerprint:
        raise CheckpointError(
            f"recovery checkpoint {os.fspath(path)!r} belongs to another run (other file, "
            "settings or data); delete it or choose another checkpoint path")
    device = next(iter(tied.parameters())).device
    tied.load_state_dict({k: v.to(device) for k, v in state["leaves"].items()})
    buffers = dict(model.named_buffers())
    with torch.no_grad():
        for name, value in state["buffers"].items():
            buffers[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epochs_done"]), int(state["step"]), list(state["history"])
