"""The model zoo: architectures by name, each with its dataset and input preprocessing.

A *model spec* is plain data that rebuilds an architecture:
``{"zoo": "mnist-mlp", "kwargs": {}}`` or ``{"factory": "package.module:function", "kwargs": {}}``.
Specs go into sidecar JSON files and ``.rdz`` manifests; ``build_from_spec`` turns them back
into a (randomly initialized) ``nn.Module``.

A spec read from a file is data, never code: ``{"zoo": NAME}`` is looked up in the registry
below and nothing else; ``{"factory": ...}`` is imported and called only with
``trust_code=True`` (the transformers ``trust_remote_code`` habit). Callers that are handed a
factory by the user (``--arch pkg.mod:fn``, ``load(path, model=...)``) need no opt-in: the user
named the code. The keyword arguments of a spec must be ones the factory takes.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from rdcompress.errors import ModelError
from rdcompress.models.lenet import LeNet5
from rdcompress.models.lenet_caffe import LeNet5Caffe
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
        ZooEntry("lenet5-caffe", LeNet5Caffe, "mnist", MNIST_NORMALIZE,
                 "LeNet-5 in Caffe's layout: conv 20 -> conv 50 -> fc 500 -> fc 10 (431k "
                 "weights; the compression literature's LeNet-5)"),
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
    _check_kwargs(name, entry.factory, kwargs)
    return _call(name, entry.factory, {**entry.kwargs, **kwargs})


def import_factory(path: str) -> Callable[..., nn.Module]:
    """Resolve ``'package.module:function'`` to a callable returning an ``nn.Module``.

    Imports the module, which runs its code: call this only for a factory the user named.
    """
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


def untrusted_factory_message(factory: str, source: str) -> str:
    """Why a factory named by a file is not run, and the three ways forward."""
    return (
        f"{source} names the code {factory!r} as its architecture; rdcompress never imports or "
        "runs code named by a file. Pass an architecture you have checked yourself "
        "(rdcompress.load(path, model=YourNet()), load_model(..., arch='package.module:factory'), "
        "or --arch package.module:factory on the command line), or opt in with trust_code=True / "
        "--trust-code if you trust the file's author."
    )


def is_zoo_spec(spec: Any) -> bool:
    """True for a well-formed ``{"zoo": NAME, ...}`` spec (built from the registry only)."""
    return isinstance(spec, dict) and isinstance(spec.get("zoo"), str) and "factory" not in spec


def build_from_spec(spec: dict[str, Any], *, trust_code: bool = False,
                    device: str | None = None, source: str = "the model spec") -> nn.Module:
    """Rebuild an architecture from a model spec (see the module docstring).

    Args:
        trust_code: allow a ``{"factory": "pkg.mod:fn"}`` spec to import and call ``fn``.
            Leave False for a spec read from a file unless its author is trusted.
        device: build under this torch device (``"meta"``: shapes only, nothing allocated, for
            checking a file's tensors against the architecture before building it for real).
        source: where the spec came from, for error messages (e.g. "the manifest of 'm.rdz'").
    """
    if not isinstance(spec, dict):
        raise ModelError(f"{source}: a model spec must be a JSON object, got "
                         f"{type(spec).__name__}")
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise ModelError(f"{source}: the spec's 'kwargs' must be an object of named arguments, "
                         f"got {type(kwargs).__name__}")
    if "zoo" in spec and "factory" in spec:
        raise ModelError(f"{source}: the spec names both a zoo model and a factory; it must "
                         "name exactly one")
    context = torch.device(device) if device is not None else contextlib.nullcontext()
    if "zoo" in spec:
        name = spec["zoo"]
        if not isinstance(name, str):
            raise ModelError(f"{source}: the zoo name must be a string, got "
                             f"{type(name).__name__}")
        with context:
            return build(name, **kwargs)
    if "factory" in spec:
        factory_path = spec["factory"]
        if not isinstance(factory_path, str):
            raise ModelError(f"{source}: the factory must be a 'package.module:function' "
                             f"string, got {type(factory_path).__name__}")
        if not trust_code:
            raise ModelError(untrusted_factory_message(factory_path, source))
        factory = import_factory(factory_path)
        _check_kwargs(factory_path, factory, kwargs)
        with context:
            module = _call(factory_path, factory, kwargs)
        if not isinstance(module, nn.Module):
            raise ModelError(f"factory {factory_path!r} returned {type(module).__name__}, "
                             "not an nn.Module")
        return module
    raise ModelError(f"{source}: model spec {spec!r} names neither 'zoo' nor 'factory'")


def _check_kwargs(name: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> None:
    """ModelError naming the arguments ``factory`` does not take (instead of a TypeError)."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: the call will tell
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    accepted = [p.name for p in parameters
                if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                              inspect.Parameter.KEYWORD_ONLY)]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ModelError(f"model {name!r} does not take the arguments {unknown}; it takes "
                         f"{accepted}. The spec was written for another architecture or "
                         "version; fix its 'kwargs'.")


def _call(name: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    try:
        return factory(**kwargs)
    except (TypeError, ValueError, OverflowError, RuntimeError) as error:
        shown = {k: (v if len(repr(v)) < 60 else f"{repr(v)[:57]}...") for k, v in kwargs.items()}
        raise ModelError(f"cannot build {name!r} with arguments {shown}: {error}") from error
