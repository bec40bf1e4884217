"""Work-arounds for third-party packages, each with its reason. Kept small and loud.

`import_timm()` / `import_torchvision()`: timm imports torchvision when it is imported (`torchvision.ops.misc`,
`torchvision.models.feature_extraction`). A torchvision wheel whose compiled ops cannot load
against the installed torch (for example PyPI's CUDA build of torchvision next to the CPU
build of torch) fails at import time, while registering a fake kernel for `torchvision::nms`:
`RuntimeError: operator torchvision::nms does not exist`. Nothing here uses torchvision's
compiled ops, so in that one case the two operator schemas torchvision's import expects are
declared (with no kernel: calling them still fails) and the import is retried, with a warning
naming the proper fix (a torchvision build that matches torch).
"""

from __future__ import annotations

import sys
import threading
import warnings
from types import ModuleType

import torch

_LOCK = threading.Lock()
_SCHEMA_LIB: torch.library.Library | None = None
_MISSING_OPS = (  # the operators torchvision's import registers fake kernels for unconditionally
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


def _declare_torchvision_schemas() -> None:
    global _SCHEMA_LIB
    if _SCHEMA_LIB is None:
        lib = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _MISSING_OPS:
            lib.define(schema)
        _SCHEMA_LIB = lib  # keep the library object alive: the schemas live as long as it does


def _import_torchvision() -> None:
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        warnings.warn(
            f"torchvision {_dist_version('torchvision')} cannot load its compiled ops with torch {torch.__version__} "
            f"({exc}); continuing without them (timm does not need them). Install the torchvision build that matches "
            "torch (for a CPU torch: the +cpu wheel from https://download.pytorch.org/whl/cpu) to silence this.",
            RuntimeWarning, stacklevel=3)
        _declare_torchvision_schemas()
        import torchvision  # noqa: F401,F811


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "(not installed)"


def import_torchvision() -> ModuleType:
    """Import and return `torchvision` (for code that needs no compiled op: models, transforms,
    lpips), working around compiled ops that do not load."""
    with _LOCK:
        _import_torchvision()
    import torchvision

    return torchvision


def import_timm() -> ModuleType:
    """Import and return `timm`, working around a torchvision whose compiled ops do not load."""
    with _LOCK:
        if "timm" not in sys.modules:
            _import_torchvision()
        import timm

    return timm
