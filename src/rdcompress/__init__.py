"""rdcompress: compress trained PyTorch models by rate-distortion theory.

Top-level API (imported lazily so that ``rdcompress --help`` stays fast):

- ``rdcompress.load(path, model=None, *, trust_code=False)`` — a compressed ``.rdz`` model as a
  ready ``nn.Module``; the architecture is a zoo name from the file, or ``model`` (a file that
  names ``package.module:factory`` code is refused unless ``trust_code=True``);
- ``rdcompress.open_model(source, weights=None, arch=None)`` — any model source (a ``.rdz``, a
  weights file with its sidecar, a zoo name) as module + spec + preprocessing + dataset;
- ``rdcompress.compress.compress(model, config, importance)`` — the subpackage's function;
- ``rdcompress.compute_importance(model, loader, objective)`` — see ``rdcompress.importance``.
"""

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "load": ("rdcompress.compress", "load"),
    "compute_importance": ("rdcompress.importance", "compute_importance"),
    "open_model": ("rdcompress.api", "open_model"),
    "load_model": ("rdcompress.models", "load_model"),
    "load_dataset": ("rdcompress.data", "load_dataset"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attribute = _LAZY[name]
        return getattr(importlib.import_module(module_name), attribute)
    raise AttributeError(f"module 'rdcompress' has no attribute {name!r}")
