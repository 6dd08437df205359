"""Import-only stand-ins for packages nncodec imports but its codec never uses.

``nncodec.nnc`` imports torchvision and OpenCV (dataset loaders and image transforms) even when
only the codec runs, and neither can be installed beside the pinned CPU torch here (torchvision
from pip pulls another torch; opencv is large and unused). bench/vs_nncodec.py puts this folder
on ``sys.path`` only when the real torchvision is missing. Every attribute is a placeholder class
that can be subclassed, called with any arguments and looked into, so that module-level code
such as ``transforms.Compose([transforms.Resize(256)])`` or ``class D(datasets.ImageFolder)``
imports; nothing here computes anything.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any


class _PlaceholderType(type):
    """Class-level lookups (``InterpolationMode.BILINEAR``) give further placeholders."""

    def __getattr__(cls, attr: str) -> type:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return placeholder(f"{cls.__qualname__}.{attr}")


class Placeholder(metaclass=_PlaceholderType):
    """Any object of a stubbed package: it can be subclassed, called with any arguments and
    looked into, and does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Placeholder:
        return Placeholder()

    def __getattr__(self, attr: str) -> type:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return placeholder(f"{type(self).__qualname__}.{attr}")


def placeholder(name: str) -> type:
    """A new placeholder class named ``name`` (a class, so that code may subclass it)."""
    return _PlaceholderType(name, (Placeholder,), {"__qualname__": name})


class StubModule(ModuleType):
    """A module whose every public attribute is a ``Placeholder``."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return placeholder(f"{self.__name__}.{attr}")


def stub_submodules(package: str, names: tuple[str, ...]) -> dict[str, StubModule]:
    """Register ``package.name`` stub modules (so ``from package.name import x`` works)."""
    modules = {}
    for name in names:
        module = StubModule(f"{package}.{name}")
        sys.modules[module.__name__] = module
        modules[name] = module
    return modules
