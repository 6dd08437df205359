"""The one place that knows what a model source is: ``open_model(source)``.

A source is a compressed ``.rdz`` file (decoded by ``rdcompress.compress.load``), a weights file
with its sidecar or ``arch``, or a zoo name / ``package.module:factory`` with ``weights``
(``rdcompress.models.load_model``). Commands and experiments open models only through here, so
that the models layer never reaches up into the compress layer.
"""

from __future__ import annotations

from pathlib import Path

from rdcompress.errors import CheckpointError, ModelError
from rdcompress.models import LoadedModel, load_model
from rdcompress.models.loading import finish_loaded, spec_for
from rdcompress.models.zoo import build_from_spec


def open_model(source: str | Path, weights: str | Path | None = None, arch: str | None = None,
               *, trust_code: bool = False) -> LoadedModel:
    """The model ``source`` names, as the CLI's MODEL argument reads it.

    - a ``.rdz`` file: the compressed model (``arch``: an architecture its manifest does not
      name in the zoo); its weights are the file's, so ``weights`` is refused;
    - everything else as ``rdcompress.models.load_model``.

    ``source`` and ``arch`` are the caller's own words: a factory named there is imported and
    called. A factory named by a *file* (sidecar or manifest) runs only with ``trust_code``.
    """
    path = Path(str(source))
    if path.suffix != ".rdz":
        return load_model(source, weights=weights, arch=arch, trust_code=trust_code)
    if weights is not None:
        raise ModelError(f"MODEL {str(source)!r} is a compressed model that holds its own "
                         "weights; drop --weights")
    from rdcompress.compress import load

    model = None
    if arch is not None:  # the caller's architecture: built here, filled by load
        model = build_from_spec(spec_for(arch), trust_code=True, source=f"--arch {arch}")
    module, manifest = load(path, model=model, return_manifest=True, trust_code=trust_code)
    spec = spec_for(arch) if arch is not None else manifest.get("model")
    metadata = manifest.get("model_metadata") or {}
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: the manifest's model_metadata is "
                              f"{type(metadata).__name__}, not an object")
    return finish_loaded(module, spec or {}, path.as_posix(), dict(metadata))
