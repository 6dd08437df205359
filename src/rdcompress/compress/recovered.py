"""Compress by any method, then recover inside its structure: the registered method kind of
recovery (``rdcompress.recover``).

``RecoveredConfig(base=QuantizeConfig(clusters=4), recover=RecoverConfig(epochs=2))`` runs the
base method, then fine-tunes what the file stores (codebooks, kept values, raw tensors; masks
and indices stay) on the calibration data against the original model, and re-codes the file:
the model ``load`` returns is exactly the one that was trained. It goes wherever a method goes
(``compress``, the manifest, ``config_from_dict``); ``rdcompress compress ... --recover-epochs N``
wraps the method the flags describe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar

from rdcompress.compress._layers import layer_distortion
from rdcompress.compress.api import CompressedModel
from rdcompress.compress.context import Context, results_or_model
from rdcompress.compress.quantize import QuantizeConfig
from rdcompress.compress.registry import MethodSpec, config_from_dict, register, spec_of
from rdcompress.errors import ConfigError
from rdcompress.recover.config import RecoverConfig


@dataclass
class RecoveredConfig:
    base: Any  # any registered method's config (its to_dict() is rebuilt)
    recover: RecoverConfig = field(default_factory=RecoverConfig)

    method: ClassVar[str] = "recovered"

    def __post_init__(self) -> None:
        if isinstance(self.base, Mapping):
            self.base = config_from_dict(self.base)
        if isinstance(self.recover, Mapping):
            names = {f.name for f in fields(RecoverConfig)}
            self.recover = RecoverConfig(**{k: v for k, v in self.recover.items() if k in names})
        if not isinstance(self.recover, RecoverConfig):
            raise ConfigError(f"recover={self.recover!r} must be a RecoverConfig.")
        if isinstance(self.base, RecoveredConfig):
            raise ConfigError("recover once: the base of a RecoveredConfig is itself recovered.")
        spec_of(self.base)  # a registered method (ConfigError otherwise)

    @property
    def needs(self) -> set[str]:
        """The base method's needs, and the data to fine-tune on."""
        return spec_of(self.base).needs_of(self.base) | {"calibration"}

    def to_dict(self) -> dict:
        return {"method": self.method, "base": self.base.to_dict(),
                "recover": asdict(self.recover)}


def handle_recovered(ctx: Context, config: RecoveredConfig) -> CompressedModel:
    from rdcompress.recover import recover

    compressed = results_or_model(spec_of(config.base).handler(ctx, config.base), ctx,
                                  config.base)
    result = recover(compressed, data=ctx.calibration, config=config.recover,
                     original=ctx.model, batch_fn=ctx.batch_fn)
    state = result.state_dict()
    layers = {}
    for layer in ctx.layers:  # the recorded distortions are those of the recovered weights
        if layer.name in compressed.layers:
            distortion, zero = layer_distortion(layer, state[layer.name])
            layers[layer.name] = replace(compressed.layers[layer.name], distortion=distortion,
                                         relative_distortion=distortion / zero if zero else 0.0)
    manifest = {**result.manifest, "method": config.method,
                "settings": {**result.manifest["settings"], **config.to_dict()},
                "layers": [stats.to_dict() for stats in layers.values()]}
    return CompressedModel(tensors=result.tensors, manifest=manifest, layers=layers,
                           coder=result.coder, _state=state, report=compressed.report)


register(MethodSpec(
    name="recovered", config=RecoveredConfig, handler=handle_recovered,
    label="compressed, then recovered",
    example={"base": QuantizeConfig(clusters=4).to_dict(),
             "recover": {"epochs": 1, "loss": "distill", "lr": 1e-3}},
    style={"color": "tab:brown", "linestyle": "-"},
    setting=lambda config: (f"{spec_of(config.base).describe(config.base)},"
                            f"recover={config.recover.epochs}"),
))
