"""Import-only OpenCV stand-in for bench/vs_nncodec.py (see _nncodec_import_stub)."""

from _nncodec_import_stub import placeholder

__version__ = "0.0+stub"


def __getattr__(name: str) -> type:
    if name.startswith("__"):
        raise AttributeError(name)
    return placeholder(f"cv2.{name}")
