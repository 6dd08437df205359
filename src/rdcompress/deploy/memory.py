"""Resident weight memory: the bytes of the tensors each module holds.

Counts every parameter and buffer (non-persistent ones too: a cached decoded weight counts),
each storage once even when shared; meta tensors count 0.
"""

from __future__ import annotations

from torch import nn


def weight_bytes(model: nn.Module) -> dict[str, int]:
    """{module name: bytes of the parameters and buffers it holds itself} (not its children's),
    modules holding nothing omitted. A storage shared by two modules counts for the first."""
    seen: set[int] = set()
    held: dict[str, int] = {}
    for name, module in model.named_modules():
        total = 0
        tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        for tensor in tensors:
            if tensor.is_meta:
                continue
            storage = tensor.untyped_storage()
            if storage.data_ptr() in seen and storage.nbytes():
                continue
            seen.add(storage.data_ptr())
            total += storage.nbytes()
        if total:
            held[name] = total
    return held


def total_weight_bytes(model: nn.Module) -> int:
    """Σ of :func:`weight_bytes`: the model's resident weight memory in bytes."""
    return sum(weight_bytes(model).values())
