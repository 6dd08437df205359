"""The model zoo: architectures by name, each with its dataset and input preprocessing.

A *model spec* is plain data that rebuilds an architecture:
``{"zoo": "mnist-mlp", "kwargs": {}}`` or ``{"factory": "package.module:function", "kwargs": {}}``.
Specs go into sidecar JSON files and ``.rdz`` manifests; ``build_from_spec`` turns them back
into a (randomly initialized) ``nn.Module``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from torch import nn

from rdcompress.errors import ModelError
from rdcompress.models.lenet import LeNet5
from rdcompress.models.mlp import digits_mlp, lenet_300_100, mnist_mlp
from rdcompress.models.preprocessing import (
    CIFAR_HALF,
    IDENTITY,
    IMAGENET_NORMALIZE,
    LENET5_RESIZE,
    MNIST_NORMALIZE,
    Preprocessing,
)
from rdcompress.models.resnet_cifar import CifarResNet
from rdcompress.models.vgg_cifar import CifarVGG


@dataclass(frozen=True)
class ZooEntry:
    name: str
    factory: Callable[..., nn.Module]
    dataset: str  # default dataset name for rdcompress.data.load_dataset
    preprocessing: Preprocessing
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)  # default factory arguments


def _resnet(depth: int) -> Callable[..., nn.Module]:
    def factory(num_classes: int = 10) -> nn.Module:
        return CifarResNet(depth=depth, num_classes=num_classes)

    factory.__name__ = f"resnet{depth}"
    return factory


ZOO: dict[str, ZooEntry] = {
    entry.name: entry
    for entry in [
        ZooEntry("digits-mlp", digits_mlp, "digits", IDENTITY,
                 "64-128-128-10 MLP for scikit-learn's 8x8 digits (the embedded default)"),
        ZooEntry("mnist-mlp", mnist_mlp, "mnist", MNIST_NORMALIZE,
                 "the paper's MNIST net: 784-256-256-10, ReLU, dropout 0.2"),
        ZooEntry("lenet-300-100", lenet_300_100, "mnist", MNIST_NORMALIZE,
                 "LeNet-300-100: 784-300-100-10 MLP"),
        ZooEntry("lenet5", LeNet5, "mnist", LENET5_RESIZE,
                 "LeNet-5 with ReLU on 32x32 (bilinear-resized) MNIST; outputs log-probabilities"),
        *[
            ZooEntry(f"resnet{depth}", _resnet(depth), "cifar10", IMAGENET_NORMALIZE,
                     f"CIFAR ResNet-{depth} (He et al. 2016), option-A shortcuts")
            for depth in (20, 32, 44, 56)
        ],
        ZooEntry("vgg-cifar", CifarVGG, "cifar10", CIFAR_HALF,
                 "the paper's CIFAR net: 128-128-M-256-256-M-512-512-M-1024-M + BN + Linear "
                 "(kwarg width, default 128)"),
    ]
}


def get_entry(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError:
        known = ", ".join(ZOO)
        raise ModelError(
            f"unknown zoo model {name!r}; known models: {known}. "
            "Bring your own as 'package.module:factory' with --weights."
        ) from None


def build(name: str, **kwargs: Any) -> nn.Module:
    """Build a zoo architecture (random initialization)."""
    entry = get_entry(name)
    return entry.factory(**{**entry.kwargs, **kwargs})


def import_factory(path: str) -> Callable[..., nn.Module]:
    """Resolve ``'package.module:function'`` to a callable returning an ``nn.Module``."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ModelError(f"model factory {path!r} must look like 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ModelError(
            f"cannot import module {module_name!r} for factory {path!r}: {error}. "
            "Is the package installed or on PYTHONPATH?"
        ) from error
    factory: object = module
    for part in attribute.split("."):
        factory = getattr(factory, part, None)
        if factory is None:
            raise ModelError(f"module {module_name!r} has no attribute {attribute!r}")
    if not callable(factory):
        raise ModelError(f"{path!r} is not callable")
    # what it returns is only known when called; callers check it is an nn.Module
    return cast(Callable[..., nn.Module], factory)


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """Rebuild an architecture from a model spec (see the module docstring)."""
    if not isinstance(spec, dict):
        raise ModelError(f"a model spec must be a dict, got {type(spec).__name__}")
    kwargs = dict(spec.get("kwargs") or {})
    if "zoo" in spec:
        return build(spec["zoo"], **kwargs)
    if "factory" in spec:
        module = import_factory(spec["factory"])(**kwargs)
        if not isinstance(module, nn.Module):
            raise ModelError(f"factory {spec['factory']!r} returned {type(module).__name__}, "
                             "not an nn.Module")
        return module
    raise ModelError(f"model spec {spec!r} names neither 'zoo' nor 'factory'")
