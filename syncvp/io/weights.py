"""Pretrained weights come from local files named in params.yaml; nothing is downloaded.

`resolve_weights` fails before any expensive work with a message that names the file, where to
get it and where to put it. `read_state_dict` reads a resolved file; one that is empty, cut short,
foreign or a directory fails with one line naming the file, its params.yaml key and where to get
it again (instead of torch's bare `RuntimeError`/`UnpicklingError` without a path), the same way
for every pretrained network (Depth-Anything-V2, I3D, LPIPS-AlexNet, LPIPS-VGG16).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class MissingWeightsError(FileNotFoundError):
    """A pretrained-weights file is not configured or not on disk."""


class WeightsFileError(ValueError):
    """A pretrained-weights file is not a readable state dict of the expected network."""


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
            f"  {hint}\n  put it at {default_dir}/{spec.filename} and set {spec.key}: {default_dir}/{spec.filename}"
        )
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(
            f"{spec.title} weights not found: {path} (params.yaml {spec.key}).\n"
            f"  {hint}\n  put it at {path} (or point {spec.key} at where it is)"
        )
    return path


def weights_fix(spec: WeightsSpec) -> str:
    """What to do about a bad weights file, in one line."""
    return f"download {spec.filename} again from {spec.url} (params.yaml {spec.key})"


def read_state_dict(path: Path | str, spec: WeightsSpec, *, mmap: bool = False) -> dict:
    """The state dict of tensors in `path` (`torch.load(weights_only=True)`, on the CPU).

    Args:
        mmap: map the tensors instead of reading them (cheap inspection of a large file; a file
            in the legacy non-zip format is read normally).

    Raises:
        WeightsFileError: the file is a directory, unreadable, empty, truncated, not a torch file,
            or not a flat dict of tensors; one line naming the file, the key and the fix.
    """
    import torch

    from syncvp.io.model_file import describe_load_failure, load_state

    path = Path(path)
    if path.is_dir():
        raise WeightsFileError(f"{path} is a directory, not {spec.title} weights; {weights_fix(spec)}")
    try:
        state = load_state(path, mmap)
    except PermissionError as exc:
        raise WeightsFileError(f"{path} cannot be read ({exc.strerror}): check its permissions") from exc
    except Exception as exc:  # torch raises EOFError, OSError, RuntimeError, UnpicklingError...
        raise WeightsFileError(
            f"{path} is not {spec.title} weights (truncated or foreign: "
            f"{describe_load_failure(path, exc)}); {weights_fix(spec)}"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        what = type(state).__name__ if not isinstance(state, dict) else "a dict with values other than tensors"
        raise WeightsFileError(
            f"{path} is not {spec.title} weights (it holds {what}, not a state dict of tensors); {weights_fix(spec)}"
        )
    return state
