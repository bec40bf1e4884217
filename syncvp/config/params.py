"""The root of `params.yaml`: one attribute per top-level section, loaded strictly."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncvp.config.autoencoder import AutoencoderConfig, TrainAutoencoderConfig
from syncvp.config.data import DatasetConfig, check_name
from syncvp.config.diffusion import DiffusionConfig, JointConfig, SamplingConfig, UNetConfig, check_sampling
from syncvp.config.evaluate import EvaluateConfig
from syncvp.config.layout import PathsConfig
from syncvp.config.loader import FieldError, ParamsError, build, read_yaml, require
from syncvp.config.pipeline import PipelineConfig, expected_pipeline
from syncvp.config.runtime import RunConfig, WeightsConfig
from syncvp.config.train_diffusion import TrainJointConfig, TrainSingleConfig, check_explicit_modalities


@dataclass(frozen=True, kw_only=True)
class Params:
    """Everything in `params.yaml`, validated. Derived values are methods; nothing mutates."""

    run: RunConfig
    paths: PathsConfig
    weights: WeightsConfig
    pipeline: PipelineConfig
    datasets: dict[str, DatasetConfig]
    autoencoder: AutoencoderConfig
    train_autoencoder: TrainAutoencoderConfig
    unet: UNetConfig
    diffusion: DiffusionConfig
    joint: JointConfig
    sampling: SamplingConfig
    evaluate: EvaluateConfig
    train_single: TrainSingleConfig
    train_joint: TrainJointConfig

    def __post_init__(self) -> None:
        for name in self.datasets:
            check_name(f"datasets.{name}", name)
        self._check_fanout()
        self._check_patch_size()
        self._check_across_sections()

    def _check_across_sections(self) -> None:
        """What the stages check when they start, checked when params load (DVC deletes a stage's
        outputs before the stage runs, so a stage must not be the first to refuse its params)."""
        check_sampling(self.sampling, self.diffusion)
        for ds in self.pipeline.train:
            self.evaluate.check_modalities(self.datasets[ds].modalities)
        for ds in self.pipeline.joint:
            check_explicit_modalities(self.train_joint, self.datasets[ds].modalities, ds)
        declared = sorted({m for ds in self.datasets.values() for m in ds.modalities})
        for i, m in enumerate(self.diffusion.extrapolate_modalities or ()):
            require(
                m in declared,
                f"diffusion.extrapolate_modalities[{i}]",
                f"{m!r} is not a modality of any dataset (they are {declared})",
            )

    def _check_patch_size(self) -> None:
        p = self.autoencoder.patch_size
        for ds in self.pipeline.train:
            h, w = self.datasets[ds].resolution
            require(
                h % p == 0 and w % p == 0,
                "autoencoder.patch_size",
                f"{p} does not divide the resolution {h}x{w} of trained dataset {ds!r}",
            )

    def _check_fanout(self) -> None:
        for ds in self.pipeline.train:
            require(ds in self.datasets, "pipeline.train", f"{ds!r} is not a dataset (known: {list(self.datasets)})")
        want = expected_pipeline(self.datasets, self.paths, self.pipeline.train, self.diffusion.context_encoder)
        for key, expected in want.items():
            got = getattr(self.pipeline, key)
            if isinstance(got, dict):
                got = {k: list(v) if isinstance(v, tuple) else v for k, v in got.items()}
            elif not isinstance(got, str):
                got = list(got)
            same = got == expected if isinstance(expected, (dict, str)) else sorted(got) == sorted(expected)
            require(
                same,
                f"pipeline.{key}",
                f"must be {_yaml(expected)} (implied by `datasets`; `python -m syncvp fanout` prints the "
                f"whole section), got {_yaml(got)}",
            )

    def section(self, dotted: str) -> Any:
        """The config object at a dotted key, e.g. `datasets.synthetic`."""
        obj: Any = self
        for part in dotted.split("."):
            obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
        return obj


def _yaml(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(list(value))


def load_params(path: str | Path = "params.yaml") -> Params:
    """Load and validate `params.yaml`; any problem raises `ParamsError` naming file and key."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return build(Params, data, "", str(path))


def params_from_dict(data: dict, source: str = "<params>") -> Params:
    """Build `Params` from an already-parsed mapping (tests, experiments)."""
    return build(Params, data, "", source)


def replace(params: Params, **changes: Any) -> Params:
    """`dataclasses.replace` that reports validation errors like the loader does."""
    try:
        return dataclasses.replace(params, **changes)
    except FieldError as exc:
        raise ParamsError(f"<replace>: {exc}") from None
