"""Model zoo, preprocessing, and weight loading.

>>> from rdcompress.models import build, load_model
>>> net = build("mnist-mlp")                                  # random init
>>> loaded = load_model("resnet20", weights="resnet20-12fca82f.th")

Files never run code: a sidecar or manifest that names a ``package.module:factory`` is refused
unless the caller passes ``arch=`` / ``model=`` or ``trust_code=True`` (see ``zoo``).
"""

from rdcompress.models.loading import (
    LoadedModel,
    check_finite,
    check_fits,
    load_model,
    load_state,
    load_weights,
    parameter_count,
    sidecar_path,
)
from rdcompress.models.preprocessing import Preprocessing
from rdcompress.models.zoo import (
    ZOO,
    ZooEntry,
    build,
    build_from_spec,
    get_entry,
    import_factory,
    is_zoo_spec,
)

__all__ = [
    "ZOO", "LoadedModel", "Preprocessing", "ZooEntry", "build", "build_from_spec",
    "check_finite", "check_fits", "get_entry", "import_factory", "is_zoo_spec", "load_model",
    "load_state", "load_weights", "parameter_count", "sidecar_path",
]
