"""`init: checkpoint`: where a unit's starting weights come from, checked before any work (the
pieces both training families share; `autoencoder_job` and `diffusion_job` check their files).

A unit `<dataset>-<modality>[-<role>]` (or the joint unit `<dataset>`) starts from the same unit of
`init_from.dataset` in the models folder `init_from.models` (laid out like `paths.models`). The file
must hold the architecture the unit trains now: a mismatch is an error that names the file and
the keys that differ, raised when the stage plans (before latents are encoded or a step is taken).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from syncvp.config.init_from import InitFrom
from syncvp.config.layout import PathsConfig
from syncvp.config.loader import to_plain

# `diffusion` keys that change how a model is trained, not what it computes: a fine-tune may change them
TRAINING_ONLY = ("min_snr_gamma", "high_noise_share", "high_noise_from")


def network_space(diffusion) -> dict:
    """The `diffusion` section without TRAINING_ONLY: what a model file's network computes."""
    return {k: v for k, v in to_plain(diffusion).items() if k not in TRAINING_ONLY}


def source_paths(paths: PathsConfig, init_from: InitFrom) -> PathsConfig:
    """`paths` with its models folder moved to `init_from.models` (the layout of the source run)."""
    return dataclasses.replace(paths, models=Path(init_from.models))


def missing_init(path: Path, stage: str, init_from: InitFrom) -> FileNotFoundError:
    return FileNotFoundError(
        f"{path} does not exist: {stage}.init is checkpoint and {stage}.init_from names dataset "
        f"{init_from.dataset!r} under {init_from.models}; copy that run's models folder there (or fix init_from)"
    )


def differences(got: dict, want: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain mappings."""
    out = []
    for key in sorted(set(got) | set(want)):
        a, b = got.get(key), want.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {a!r} (now {b!r})")
    return out


def init_mismatch(path: Path, what: str, diffs: list[str], stage: str) -> ValueError:
    shown = "; ".join(diffs[:4]) + ("; ..." if len(diffs) > 4 else "")
    return ValueError(
        f"{path} cannot start {what}: it was trained with {shown}; set those keys as the file has them "
        f"(or {stage}.init: scratch)"
    )
