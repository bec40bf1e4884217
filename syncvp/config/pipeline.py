"""The `pipeline` section: the lists `dvc.yaml` fans its stages out over.

DVC cannot derive one list from another, so each stage's items are spelled out here; `Params`
checks them against `datasets` and prints the exact expected value when they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncvp.config.layout import autoencoder_unit, single_unit
from syncvp.config.roles import ROLES


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Stage fan-out.

    Attributes:
        synthesize: datasets whose source is made by the `synthesize` stage (its `producer`).
        download_era5: datasets whose source is downloaded by `download_era5` (`era5`).
        pseudo_depth: dataset -> folder of its raw frames, for datasets whose depth is
            estimated with Depth-Anything-V2 (the folder is the stage's DVC dependency).
        prepare: dataset -> the folder its clip stores are made from (the raw frames, or the
            pseudo-depth output for datasets that need it), for every dataset.
        train: datasets that are trained (stage 1, stage 2) and evaluated.
        autoencoders: `<dataset>-<modality>-<context|future>` -> dataset, for every trained dataset.
        single: `<dataset>-<modality>` -> dataset (stage-1 models), for every trained dataset.
        joint: dataset -> its stage-1 units, for every trained dataset with >= 2 modalities (the
            `train_joint` fan-out; DVC cannot derive a list of deps, so dvc.yaml names the
            stage-1 models of a joint model through this list).
        context_role: the autoencoder the diffusion stages encode context frames with, as the
            unit suffix dvc.yaml names: "context" (`diffusion.context_encoder: context`, the
            paper's), or "future" (`context_encoder: future`: the future autoencoder encodes the
            held context, and no context autoencoder is trained).
    """

    synthesize: tuple[str, ...]
    download_era5: tuple[str, ...]
    pseudo_depth: dict[str, str]
    prepare: dict[str, str]
    train: tuple[str, ...]
    autoencoders: dict[str, str]
    single: dict[str, str]
    joint: dict[str, tuple[str, ...]]
    context_role: str


def expected_pipeline(datasets: dict, paths, train: tuple[str, ...], context_encoder: str = "context") -> dict:
    """The whole `pipeline` section implied by `datasets`, `paths`, the trained datasets and
    `diffusion.context_encoder`."""

    def prepare_input(name: str, ds) -> str:
        if getattr(ds, "pseudo_depth", None) is not None:
            return str(paths.interim_dir(name))
        return str(ds.source.input_dir(name, paths))

    roles = ROLES if context_encoder == "context" else ("future",)
    autoencoders, single = expected_units(train, {n: ds.modalities for n, ds in datasets.items() if n in train}, roles)
    return {
        "synthesize": [n for n, ds in datasets.items() if ds.source.producer == "synthesize"],
        "download_era5": [n for n, ds in datasets.items() if ds.source.producer == "download_era5"],
        "pseudo_depth": {
            n: str(ds.source.input_dir(n, paths))
            for n, ds in datasets.items()
            if getattr(ds, "pseudo_depth", None) is not None
        },
        "prepare": {n: prepare_input(n, ds) for n, ds in datasets.items()},
        "train": list(train),
        "autoencoders": autoencoders,
        "single": single,
        "joint": {ds: [u for u, d in single.items() if d == ds] for ds in train if len(datasets[ds].modalities) >= 2},
        "context_role": "context" if context_encoder == "context" else "future",
    }


def expected_units(
    train: tuple[str, ...], modalities: dict[str, tuple[str, ...]], roles: tuple[str, ...] = ROLES
) -> tuple[dict, dict]:
    """The `autoencoders` (of the given roles) and `single` mappings implied by the trained datasets."""
    autoencoders, single = {}, {}
    for ds in train:
        for m in modalities[ds]:
            single[single_unit(ds, m)] = ds
            for role in roles:
                autoencoders[autoencoder_unit(ds, m, role)] = ds
    return autoencoders, single
