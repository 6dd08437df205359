"""Import-only torchvision stand-in for bench/vs_nncodec.py (see _nncodec_import_stub)."""

from _nncodec_import_stub import placeholder, stub_submodules

__version__ = "0.0+stub"

_modules = stub_submodules(__name__, ("datasets", "transforms", "models", "io", "ops", "utils"))
datasets = _modules["datasets"]
transforms = _modules["transforms"]
models = _modules["models"]
io = _modules["io"]
ops = _modules["ops"]
utils = _modules["utils"]


def __getattr__(name: str) -> type:
    if name.startswith("__"):
        raise AttributeError(name)
    return placeholder(f"torchvision.{name}")
