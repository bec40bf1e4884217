"""Params presets: YAML overlays merged onto a params file (`python -m syncvp preset <name>`).

Merging: a mapping in the overlay refines the same mapping of the base key by key, recursively;
any other value replaces the base's; `datasets` is replaced as a whole; the `pipeline` fan-out is
then re-derived from `datasets` and the overlay's `pipeline.train`. A preset may extend another
(`extends: <name>`): it is then written as the changes to that one.
"""

from __future__ import annotations

import copy
from pathlib import Path

from syncvp.config import DatasetConfig, PathsConfig
from syncvp.config.loader import ParamsError, build, read_yaml
from syncvp.config.pipeline import expected_pipeline

HERE = Path(__file__).resolve().parent
REPLACED = ("datasets",)


def names() -> list[str]:
    """The presets shipped with the package."""
    return sorted(p.stem for p in HERE.glob("*.yaml"))


def load(name: str, _seen: tuple[str, ...] = ()) -> dict:
    """The overlay of preset `name` (parsed YAML). A preset whose first key is `extends: <preset>`
    is that preset's overlay with its own merged in (the same rules as `apply`: mappings refine,
    `datasets` is replaced)."""
    path = HERE / f"{name}.yaml"
    if not path.is_file():
        raise ParamsError(f"unknown preset {name!r} (known: {', '.join(names())})")
    overlay = read_yaml(path)
    parent = overlay.pop("extends", None)
    if parent is None:
        return overlay
    if parent in (*_seen, name):
        raise ParamsError(f"{path}: extends {parent!r}, which extends it again")
    base = load(parent, (*_seen, name))
    return _merge({k: v for k, v in base.items() if k not in REPLACED or k not in overlay}, overlay)


def _merge(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merge(base[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply(base: dict, overlay: dict, source: str = "<preset>") -> dict:
    """`base` params (parsed YAML) with `overlay` merged in and `pipeline` re-derived."""
    merged = _merge({k: v for k, v in base.items() if k not in REPLACED or k not in overlay}, overlay)
    datasets = build(dict[str, DatasetConfig], merged.get("datasets"), "datasets", source)
    paths = build(PathsConfig, merged.get("paths"), "paths", source)
    train = tuple(merged.get("pipeline", {}).get("train", []))
    merged["pipeline"] = expected_pipeline(
        datasets, paths, train, (merged.get("diffusion") or {}).get("context_encoder", "context")
    )
    return merged
