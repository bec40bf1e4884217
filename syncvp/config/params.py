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
from syncvp.config.loader import FieldError, ParamsError, build, read_yaml, require, to_plain
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
            self.autoencoder_for(name), self.unet_for(name)  # the merged sections are valid
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
        for ds in self.pipeline.train:
            p = self.autoencoder_for(ds).patch_size
            h, w = self.datasets[ds].resolution
            own = self.datasets[ds].models and "patch_size" in (self.datasets[ds].models.autoencoder or {})
            require(
                h % p == 0 and w % p == 0,
                f"datasets.{ds}.models.autoencoder.patch_size" if own else "autoencoder.patch_size",
                f"{p} does not divide the resolution {h}x{w} of trained dataset {ds!r}",
            )

    def autoencoder_for(self, dataset: str) -> AutoencoderConfig:
        """The `autoencoder` section with `datasets.<dataset>.models.autoencoder` applied."""
        return self._merged("autoencoder", AutoencoderConfig, dataset)

    def unet_for(self, dataset: str) -> UNetConfig:
        """The `unet` section with `datasets.<dataset>.models.unet` applied."""
        return self._merged("unet", UNetConfig, dataset)

    def _merged(self, section: str, cls: type, dataset: str) -> Any:
        base = getattr(self, section)
        models = self.datasets[dataset].models
        changes = getattr(models, section) if models is not None else None
        if not changes:
            return base
        key = f"datasets.{dataset}.models.{section}"
        known = [f.name for f in dataclasses.fields(cls)]
        for name in changes:
            require(
                name in known, f"{key}.{name}", f"is not a key of the `{section}` section (known: {', '.join(known)})"
            )
        try:
            return build(cls, {**to_plain(base), **changes}, key, _MERGED)
        except ParamsError as exc:
            where, _, message = str(exc).removeprefix(f"{_MERGED}: ").partition(": ")
            raise FieldError(where, message) from None

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


_MERGED = "<merged>"


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
