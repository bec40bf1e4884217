"""What one autoencoder unit `<dataset>-<modality>-<context|future>` trains, checked up front.

`plan` validates the unit against the dataset and its clip stores and resolves the perceptual
loss weights before any expensive work; the resulting `AutoencoderJob` carries everything the
training (`syncvp.training.autoencoder_train`) needs, including the fingerprint that decides
whether a checkpoint may be resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from syncvp.config import AutoencoderConfig, DatasetConfig, PathsConfig, RunConfig, TrainAutoencoderConfig
from syncvp.config.init_from import InitFrom
from syncvp.config.layout import AutoencoderFiles, parse_unit
from syncvp.config.loader import to_plain
from syncvp.data.store import read_info
from syncvp.io.checkpoint import config_hash
from syncvp.io.digest import code_digest, file_md5
from syncvp.io.model_file import read_torch_file
from syncvp.io.weights import resolve_weights
from syncvp.models.autoencoder import FORMAT as AUTOENCODER_FORMAT
from syncvp.models.autoencoder import AutoencoderSpec
from syncvp.seeding import stream_seed
from syncvp.training import distributed
from syncvp.training.init_checkpoint import differences, init_mismatch, missing_init, source_paths
from syncvp.training.perceptual import VGG16

PHASES = ("reconstruct", "finetune_gan")
# train_autoencoder keys that do not change the trained weights (excluded from the resume hash)
_NOT_HASHED = ("eval_every", "eval_clips", "checkpoint_every", "log_every", "num_workers", "gan")


@dataclass(frozen=True)
class AutoencoderJob:
    """A validated unit of work: what to train, on what, and where."""

    unit: str
    dataset: str
    modality: str
    role: str
    spec: AutoencoderSpec
    train: TrainAutoencoderConfig
    seed: int
    device: str
    threads: int
    channels_last: bool
    compile: bool
    train_store: Path
    val_store: Path
    files: AutoencoderFiles
    perceptual_weights: Path | None
    init_file: Path | None = None  # train_autoencoder.init checkpoint: the weights it starts from

    @property
    def work_dir(self) -> Path:
        return self.files.work

    def checkpoint_path(self, phase: str) -> Path:
        return self.files.checkpoint(phase)

    @property
    def final_phase(self) -> str:
        return PHASES[1] if self.train.gan.enabled else PHASES[0]

    def phase_steps(self, phase: str) -> int:
        return self.train.gan.steps if phase == PHASES[1] else self.train.steps

    def seed_for(self, *purpose: str) -> int:
        """Seed of one random stream of this unit (init, data order, windows, frames...)."""
        return stream_seed(self.seed, "autoencoder", self.unit, *purpose)

    @cached_property
    def data_digest(self) -> str:
        """md5 of the training store (computed once per job)."""
        return file_md5(self.train_store)

    def fingerprint(self, phase: str) -> str:
        """Hash of everything that determines the weights a phase produces: the unit, the
        architecture, the training params (not their logging/eval/checkpoint cadence), the seed,
        the perceptual weights file, the training data, the file it starts from (init checkpoint)
        and the library code."""
        train = {k: v for k, v in to_plain(self.train).items() if k not in _NOT_HASHED}
        weights = self.perceptual_weights
        base = {
            "unit": self.unit,
            "spec": self.spec.to_dict(),
            "train": train,
            "seed": self.seed,
            "perceptual": [weights.name, weights.stat().st_size] if weights else None,
            "data": self.data_digest,
            "code": code_digest(),
        }
        if self.init_file is not None:
            base["init"] = file_md5(self.init_file)
        if phase == PHASES[1]:
            base["gan"] = to_plain(self.train.gan)
        return config_hash(base)


def plan(
    unit: str,
    *,
    dataset: DatasetConfig,
    autoencoder: AutoencoderConfig,
    train: TrainAutoencoderConfig,
    run: RunConfig,
    paths: PathsConfig,
    lpips_vgg16: Path | None,
) -> AutoencoderJob:
    """Check the unit, its clip stores and weights; no training work.

    Raises:
        ValueError: the unit does not name a modality/role of the dataset, or the store disagrees,
            or the global batch does not split evenly across the training processes.
        FileNotFoundError: a clip store is missing (run `prepare` first), or the init checkpoint.
        MissingWeightsError: `weights.lpips_vgg16` is set but the file is not there.
    """
    name, modality, role = parse_unit(unit)
    if role is None or modality not in dataset.modalities:
        raise ValueError(f"unit {unit!r}: expected <dataset>-<one of {list(dataset.modalities)}>-<context|future>")
    stores = {s: paths.store(name, s) for s in ("train", "val")}
    for split, store in stores.items():
        if not store.is_file():
            raise FileNotFoundError(f"{store} does not exist: run `dvc repro prepare@{name}` first")
    info = read_info(stores["train"], require=[modality])
    read_info(stores["val"], require=[modality])
    frames = dataset.context_frames if role == "context" else dataset.future_frames
    if (info.height, info.width) != tuple(dataset.resolution) or frames > info.frames:
        raise ValueError(
            f"{stores['train']}: {info.frames} frames of {info.height}x{info.width}; unit {unit!r} "
            f"needs {frames} frames of {dataset.resolution[0]}x{dataset.resolution[1]} (rerun prepare)"
        )
    spec = AutoencoderSpec.from_config(
        autoencoder, channels=info.modalities[modality].channels, frames=frames, resolution=dataset.resolution
    )
    weights = None
    if train.perceptual_weight > 0 and lpips_vgg16 is not None:
        weights = resolve_weights(lpips_vgg16, VGG16)
        if spec.channels not in (1, 3):
            raise ValueError(
                f"unit {unit!r}: the perceptual loss needs 1 or 3 channels, {modality} has {spec.channels}"
            )
    distributed.per_rank_batch(
        train.batch_size, distributed.planned_world(run.processes), key="train_autoencoder.batch_size"
    )
    if train.pixel_weight == 0 and weights is None:
        raise ValueError(
            "train_autoencoder.pixel_weight is 0 and the perceptual loss is off "
            "(weights.lpips_vgg16 is null): nothing to train on"
        )
    return AutoencoderJob(
        unit=unit,
        dataset=name,
        modality=modality,
        role=role,
        spec=spec,
        train=train,
        seed=run.seed,
        device=run.device,
        threads=run.threads,
        channels_last=run.channels_last,
        compile=run.compile,
        train_store=stores["train"],
        val_store=stores["val"],
        files=paths.autoencoder(name, modality, role),
        perceptual_weights=weights,
        init_file=(
            autoencoder_init(paths, train.init_from, modality, role, spec) if train.init == "checkpoint" else None
        ),
    )


def autoencoder_init(paths: PathsConfig, init_from: InitFrom, modality: str, role: str, spec: AutoencoderSpec) -> Path:
    """The autoencoder file unit `<dataset>-<modality>-<role>` starts from with `init: checkpoint`
    (`syncvp.training.init_checkpoint`), checked against the unit's `spec`."""
    path = source_paths(paths, init_from).autoencoder(init_from.dataset, modality, role).model
    if not path.is_file():
        raise missing_init(path, "train_autoencoder", init_from)
    saved = read_torch_file(path, AUTOENCODER_FORMAT, keys=("spec", "state_dict"), remedy="check init_from")["spec"]
    diffs = differences(to_plain(saved), to_plain(spec.to_dict()))
    if diffs:
        raise init_mismatch(path, f"the {modality} {role} autoencoder", diffs, "train_autoencoder")
    return path
