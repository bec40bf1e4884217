"""Pretrained weights come from local files named in params.yaml; nothing is downloaded.

`resolve_weights` fails before any expensive work with a message that names the file, where to
get it and where to put it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class MissingWeightsError(FileNotFoundError):
    """A pretrained-weights file is not configured or not on disk."""


@dataclass(frozen=True)
class WeightsSpec:
    """Where a pretrained file comes from.

    Attributes:
        title: what it is ("Depth-Anything-V2 ViT-B").
        filename: the official file name.
        url: where to download it (by hand).
        key: its params.yaml key ("weights.depth_anything_vitb").
    """

    title: str
    filename: str
    url: str
    key: str


def resolve_weights(path: Path | str | None, spec: WeightsSpec, default_dir: str = "weights") -> Path:
    """Return `path` if the file exists, else raise `MissingWeightsError` explaining what to do."""
    hint = f"download {spec.filename} from {spec.url}"
    if path is None:
        raise MissingWeightsError(
            f"{spec.title} weights are needed but params.yaml {spec.key} is null.\n"
            f"  {hint}\n  put it at {default_dir}/{spec.filename} and set {spec.key}: {default_dir}/{spec.filename}")
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(
            f"{spec.title} weights not found: {path} (params.yaml {spec.key}).\n"
            f"  {hint}\n  put it at {path} (or point {spec.key} at where it is)")
    return path
