"""The `pipeline` section: the lists `dvc.yaml` fans its stages out over.

DVC cannot derive one list from another, so each stage's items are spelled out here; `Params`
checks them against `datasets` and prints the exact expected value when they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

ROLES = ("context", "future")


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Stage fan-out.

    Attributes:
        synthesize: datasets with a synthetic source.
        download_era5: datasets with an `era5` source.
        pseudo_depth: datasets whose depth is estimated with Depth-Anything-V2.
        prepare: every dataset.
        train: datasets that are trained (stage 1, stage 2) and evaluated.
        autoencoders: `<dataset>-<modality>-<context|future>` -> dataset, for every trained dataset.
        single: `<dataset>-<modality>` -> dataset (stage-1 models), for every trained dataset.
    """

    synthesize: tuple[str, ...]
    download_era5: tuple[str, ...]
    pseudo_depth: tuple[str, ...]
    prepare: tuple[str, ...]
    train: tuple[str, ...]
    autoencoders: dict[str, str]
    single: dict[str, str]


def expected_units(train: tuple[str, ...], modalities: dict[str, tuple[str, ...]]) -> tuple[dict, dict]:
    """The `autoencoders` and `single` mappings implied by the trained datasets."""
    autoencoders, single = {}, {}
    for ds in train:
        for m in modalities[ds]:
            single[f"{ds}-{m}"] = ds
            for role in ROLES:
                autoencoders[f"{ds}-{m}-{role}"] = ds
    return autoencoders, single


def parse_unit(unit: str) -> tuple[str, str, str | None]:
    """Split `<dataset>-<modality>[-<role>]` (names never contain '-')."""
    parts = unit.split("-")
    if len(parts) == 2:
        return parts[0], parts[1], None
    if len(parts) == 3 and parts[2] in ROLES:
        return parts[0], parts[1], parts[2]
    raise ValueError(f"unit {unit!r} is not <dataset>-<modality>[-context|-future]")
