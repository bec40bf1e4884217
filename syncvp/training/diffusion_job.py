"""What one diffusion training unit trains, checked up front.

Stage 1 (`train_single`): unit `<dataset>-<modality>`, one conditional UNet on that modality's
latents. Stage 2 (`train_joint`): unit `<dataset>`, the joint model over all its modalities.

`plan_single` / `plan_joint` validate the unit against the dataset, its training store, the frozen
autoencoders (and, for `init: stage1`, the stage-1 models) before any expensive work, and return
a `DiffusionJob` carrying everything training needs plus the fingerprint that decides whether a
checkpoint may be resumed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from syncvp.config import DatasetConfig, PathsConfig, RunConfig
from syncvp.config.diffusion import DiffusionConfig, JointConfig, UNetConfig
from syncvp.config.init_from import InitFrom
from syncvp.config.layout import DiffusionFiles, autoencoder_unit, parse_unit
from syncvp.config.loader import FieldError, to_plain
from syncvp.config.roles import ROLES, RolePair
from syncvp.config.train_diffusion import TrainJointConfig, TrainSingleConfig, check_explicit_modalities, explicit_names
from syncvp.data.store import read_info
from syncvp.diffusion.conditioning import check_patterns, independent_patterns, official_patterns
from syncvp.io.checkpoint import config_hash
from syncvp.io.digest import code_digest, file_md5
from syncvp.models.autoencoder import load_autoencoder
from syncvp.models.diffusion_file import DiffusionModelFile, load_diffusion_model
from syncvp.models.triplane import TriplaneShape
from syncvp.seeding import stream_seed
from syncvp.training.init_checkpoint import differences, init_mismatch, missing_init, network_space, source_paths

# keys that do not change the trained weights (excluded from the resume fingerprint)
_NOT_HASHED = ("checkpoint_every", "log_every", "loss_curve_every", "num_workers")


@dataclass(frozen=True)
class DiffusionJob:
    """A validated unit of diffusion training.

    Attributes:
        kind: "single" (stage 1) or "joint" (stage 2).
        modalities: the modalities the model predicts (one for "single"), in dataset order.
        shapes: {m: the context and future latent shapes} from the frozen autoencoders
            (`model_shapes` orders them as the model builders and model files take them).
        autoencoders: {m: the context and future autoencoder files}.
        stage1: {m: stage-1 model file} the joint model starts from (empty otherwise).
        init_file: with `init: checkpoint`, the model file (same kind) the unit starts from.
        patterns: stage 2: {present modalities: probability} per sample; None for stage 1.
        out_dir: where the exported files go (`files`); `work_dir`: checkpoints and the latent cache.
        latent_sources: other work directories whose latent caches may be reused (read only):
            the stage-1 units' for the joint stage.
    """

    unit: str
    kind: str
    dataset: str
    modalities: tuple[str, ...]
    context_frames: int
    future_frames: int
    unet: UNetConfig
    diffusion: DiffusionConfig
    joint: JointConfig | None
    train: TrainSingleConfig | TrainJointConfig
    shapes: dict[str, RolePair[TriplaneShape]]
    autoencoders: dict[str, RolePair[Path]]
    stage1: dict[str, Path]
    patterns: dict[frozenset, float] | None
    seed: int
    device: str
    threads: int
    train_store: Path
    out_dir: Path
    latent_sources: tuple[Path, ...] = ()
    init_file: Path | None = None
    channels_last: bool = False  # run.channels_last (speed only: not in the fingerprint)
    compile: bool = False  # run.compile (speed only: not in the fingerprint)
    activation_checkpointing: bool = False  # run.activation_checkpointing (memory only: not in the fingerprint)

    @property
    def files(self) -> DiffusionFiles:
        return DiffusionFiles(self.out_dir, joint=self.kind == "joint")

    @property
    def work_dir(self) -> Path:
        return self.files.work

    @property
    def model_file(self) -> Path:
        return self.files.model

    @property
    def checkpoint_path(self) -> Path:
        return self.files.checkpoint

    @property
    def model_shapes(self) -> dict[str, tuple[TriplaneShape, TriplaneShape]]:
        """{m: (future latent, context latent)}: the order `syncvp.models` builds and stores them in."""
        return {m: (s.future, s.context) for m, s in self.shapes.items()}

    @property
    def clip_frames(self) -> int:
        return self.context_frames + self.future_frames

    def seed_for(self, *purpose: str) -> int:
        """Seed of one random stream of this unit (init, data order, noise...)."""
        return stream_seed(self.seed, f"diffusion-{self.kind}", self.unit, *purpose)

    @cached_property
    def data_digest(self) -> str:
        """md5 of the training store."""
        return file_md5(self.train_store)

    @cached_property
    def autoencoder_digests(self) -> dict[str, list[str]]:
        return {m: [file_md5(pair.context), file_md5(pair.future)] for m, pair in self.autoencoders.items()}

    @cached_property
    def fingerprint(self) -> str:
        """Hash of everything that determines the trained weights: unit, architecture, training
        params (not their cadence), seed, data, autoencoder, stage-1 and init files, and the library code."""
        train = {k: v for k, v in to_plain(self.train).items() if k not in _NOT_HASHED}
        return config_hash(
            {
                "unit": self.unit,
                "kind": self.kind,
                "modalities": list(self.modalities),
                "unet": to_plain(self.unet),
                "diffusion": to_plain(self.diffusion),
                "joint": to_plain(self.joint) if self.joint else None,
                "train": train,
                "seed": self.seed,
                "data": self.data_digest,
                "autoencoders": self.autoencoder_digests,
                "stage1": {m: file_md5(p) for m, p in self.stage1.items()},
                "init": file_md5(self.init_file) if self.init_file is not None else None,
                "frames": [self.context_frames, self.future_frames],
                "code": code_digest(),
            }
        )


def _check_store(name: str, dataset: DatasetConfig, paths: PathsConfig, modalities) -> Path:
    store = paths.store(name, "train")
    if not store.is_file():
        raise FileNotFoundError(f"{store} does not exist: run `dvc repro prepare@{name}` first")
    info = read_info(store, require=list(modalities))
    frames = dataset.context_frames + dataset.future_frames
    if (info.height, info.width) != tuple(dataset.resolution) or frames > info.frames:
        raise ValueError(
            f"{store}: {info.frames} frames of {info.height}x{info.width}; diffusion training needs "
            f"{frames} frames of {dataset.resolution[0]}x{dataset.resolution[1]} (rerun prepare)"
        )
    return store


def _check_autoencoders(
    name: str,
    modality: str,
    dataset: DatasetConfig,
    paths: PathsConfig,
    context_encoder: str = "context",
    motion: bool = False,
):
    """The autoencoder files and latent shapes of one modality (context and future). With
    `context_encoder: future` there is no context autoencoder: the future one stands in for it
    (and with `motion` the conditioning has twice its channels: `syncvp.models.context`)."""
    if context_encoder == "future":
        files, latents = _check_roles(name, modality, dataset, paths, ("future",))
        future_file, future = files["future"], latents["future"]
        if motion and dataset.context_frames < 2:
            raise ValueError(
                f"diffusion.context_motion needs >= 2 context frames; dataset {name!r} has "
                f"context_frames {dataset.context_frames}"
            )
        context = future.with_channels(2 * future.channels) if motion else future
        return RolePair(context=future_file, future=future_file), RolePair(context=context, future=future)
    files, latents = _check_roles(name, modality, dataset, paths, ROLES)
    return RolePair(**files), RolePair(**latents)


def _check_roles(name: str, modality: str, dataset: DatasetConfig, paths: PathsConfig, roles):
    """{role: autoencoder file}, {role: its latent shape} of `roles`, checked against the dataset."""
    frames_of = {"context": dataset.context_frames, "future": dataset.future_frames}
    files, latents = {}, {}
    for role in roles:
        frames = frames_of[role]
        unit = autoencoder_unit(name, modality, role)
        path = paths.autoencoder(name, modality, role).model
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: the frozen {role} autoencoder of {modality!r} is "
                f"needed; run `dvc repro train_autoencoder@{unit}` first"
            )
        spec = load_autoencoder(path).spec
        if spec.frames != frames or tuple(spec.resolution) != tuple(dataset.resolution):
            raise ValueError(
                f"{path}: an autoencoder of {spec.frames} frames at {spec.resolution}; {unit} needs "
                f"{frames} frames at {tuple(dataset.resolution)} (rerun train_autoencoder@{unit})"
            )
        files[role] = path
        latents[role] = spec.latent_shape
    return files, latents


def _job(
    unit,
    kind,
    name,
    dataset,
    modalities,
    *,
    unet,
    diffusion,
    joint,
    train,
    run,
    paths,
    out_dir,
    stage1=None,
    patterns=None,
) -> DiffusionJob:
    store = _check_store(name, dataset, paths, modalities)
    if (
        diffusion.context_encoder == "future"
        and diffusion.context_extrapolation == "flow"
        and dataset.context_frames < 2
    ):
        raise ValueError(
            f"diffusion.context_extrapolation 'flow' needs >= 2 context frames (the flow between the last two); "
            f"dataset {name!r} has context_frames {dataset.context_frames}"
        )
    checked = {
        m: _check_autoencoders(name, m, dataset, paths, diffusion.context_encoder, diffusion.context_motion)
        for m in modalities
    }
    return DiffusionJob(
        unit=unit,
        kind=kind,
        dataset=name,
        modalities=tuple(modalities),
        context_frames=dataset.context_frames,
        future_frames=dataset.future_frames,
        unet=unet,
        diffusion=diffusion,
        joint=joint,
        train=train,
        shapes={m: shapes for m, (_, shapes) in checked.items()},
        autoencoders={m: files for m, (files, _) in checked.items()},
        stage1=stage1 or {},
        patterns=patterns,
        seed=run.seed,
        device=run.device,
        threads=run.threads,
        channels_last=run.channels_last,
        compile=run.compile,
        activation_checkpointing=run.activation_checkpointing,
        train_store=store,
        out_dir=out_dir,
    )


def plan_single(
    unit: str,
    *,
    dataset: DatasetConfig,
    unet: UNetConfig,
    diffusion: DiffusionConfig,
    train: TrainSingleConfig,
    run: RunConfig,
    paths: PathsConfig,
) -> DiffusionJob:
    """Check a stage-1 unit `<dataset>-<modality>`; no training work.

    Raises:
        ValueError: the unit does not name a modality of the dataset, or a file disagrees.
        ModelFileError: an autoencoder file is truncated or foreign (the message names the file
            and the `dvc repro` that rewrites it).
        FileNotFoundError: the training store or an autoencoder file is missing (the message
            names the `dvc repro` to run).
    """
    name, modality, role = parse_unit(unit)
    if role is not None or modality not in dataset.modalities:
        raise ValueError(f"unit {unit!r}: expected <dataset>-<one of {list(dataset.modalities)}>")
    job = _job(
        unit,
        "single",
        name,
        dataset,
        [modality],
        unet=unet,
        diffusion=diffusion,
        joint=None,
        train=train,
        run=run,
        paths=paths,
        out_dir=paths.single(name, modality).root,
    )
    return _with_init(job, train, paths)


def _with_init(job: DiffusionJob, train, paths: PathsConfig) -> DiffusionJob:
    """The job with the file it starts from when `init` is checkpoint (checked against it)."""
    if train.init != "checkpoint":
        return job
    init_file = diffusion_init(
        paths,
        train.init_from,
        kind=job.kind,
        modalities=job.modalities,
        unet=job.unet,
        joint=job.joint,
        diffusion=job.diffusion,
        shapes=job.model_shapes,
    )
    return dataclasses.replace(job, init_file=init_file)


def resolve_patterns(train: TrainJointConfig, modalities) -> dict[frozenset, float]:
    """The modality-dropout patterns {present modalities: probability} of `train_joint`."""
    modalities = list(modalities)
    if train.patterns == "official":
        patterns = official_patterns(modalities, train.cond_prob)
    elif train.patterns == "independent":
        patterns = independent_patterns(modalities, train.cond_prob)
    else:
        try:
            check_explicit_modalities(train, modalities)
        except FieldError as exc:
            raise ValueError(str(exc)) from None
        patterns = {frozenset(explicit_names(key)): float(p) for key, p in train.explicit.items()}
    check_patterns(patterns, modalities)
    return patterns


def _check_stage1(name: str, modality: str, unet: UNetConfig, shape: RolePair, paths: PathsConfig) -> Path:
    path = paths.single(name, modality).model
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: train_joint.init is stage1; run "
            f"`dvc repro train_single@{name}-{modality}` first (or set train_joint.init: scratch)"
        )
    f = load_diffusion_model(path, kind="single")  # a ModelFileError (a ValueError) names the file and the fix
    if f.unet != unet or f.shapes.get(modality) != (shape.future, shape.context):
        raise ValueError(
            f"{path} was trained with another `unet` section or latent geometry than the joint model "
            f"uses now: rerun `dvc repro train_single@{name}-{modality}`"
        )
    return path


def plan_joint(
    name: str,
    *,
    dataset: DatasetConfig,
    unet: UNetConfig,
    diffusion: DiffusionConfig,
    joint: JointConfig,
    train: TrainJointConfig,
    run: RunConfig,
    paths: PathsConfig,
) -> DiffusionJob:
    """Check a stage-2 unit (a dataset): patterns, store, autoencoders, stage-1 files; no training.

    Raises:
        ValueError: bad patterns, fewer than 2 modalities, or a file that disagrees.
        FileNotFoundError: a missing store, autoencoder, (init stage1) stage-1 file or (init
            checkpoint) joint model file.
    """
    modalities = list(dataset.modalities)
    if len(modalities) < 2:
        raise ValueError(f"dataset {name!r} has modalities {modalities}: the joint model needs at least 2")
    patterns = resolve_patterns(train, modalities)
    job = _job(
        name,
        "joint",
        name,
        dataset,
        modalities,
        unet=unet,
        diffusion=diffusion,
        joint=joint,
        train=train,
        run=run,
        paths=paths,
        out_dir=paths.joint(name).root,
        patterns=patterns,
    )
    job = dataclasses.replace(job, latent_sources=tuple(paths.single(name, m).work for m in modalities))
    if joint.same_noise and len(set(job.shapes[m].future for m in modalities)) != 1:
        raise ValueError(
            f"joint.same_noise needs one future-latent shape for all modalities of {name!r}, got "
            f"{ {m: job.shapes[m].future for m in modalities} }"
        )
    if train.init == "stage1":
        if joint.shared_weights:
            raise ValueError(
                "train_joint.init stage1 loads one stage-1 model per branch; with joint.shared_weights "
                "there is one branch: use train_joint.init: scratch"
            )
        stage1 = {m: _check_stage1(name, m, unet, job.shapes[m], paths) for m in modalities}
        job = dataclasses.replace(job, stage1=stage1)
    return _with_init(job, train, paths)


def diffusion_init(
    paths: PathsConfig,
    init_from: InitFrom,
    *,
    kind: str,
    modalities: tuple[str, ...],
    unet: UNetConfig,
    joint: JointConfig | None,
    diffusion: DiffusionConfig,
    shapes: dict,
) -> Path:
    """The stage-1 (`kind` single) or joint model file a diffusion unit starts from with `init:
    checkpoint` (`syncvp.training.init_checkpoint`), checked against the unit's modalities, `unet`,
    `joint` and `diffusion` sections (not the keys that only shape training) and latent shapes
    {m: (future, context)}."""
    source = source_paths(paths, init_from)
    stage = "train_single" if kind == "single" else "train_joint"
    if kind == "single":
        (modality,) = modalities
        path = source.single(init_from.dataset, modality).model
    else:
        path = source.joint(init_from.dataset).model
    if not path.is_file():
        raise missing_init(path, stage, init_from)
    f: DiffusionModelFile = load_diffusion_model(path, kind=kind)

    def described(modalities, unet, joint, diffusion, shapes) -> dict:
        return {
            "modalities": list(modalities),
            "unet": to_plain(unet),
            "joint": to_plain(joint),
            "diffusion": network_space(diffusion),
            "shapes": {m: [to_plain(s) for s in pair] for m, pair in shapes.items()},
        }

    diffs = differences(
        described(f.modalities, f.unet, f.joint, f.diffusion, f.shapes),
        described(modalities, unet, joint, diffusion, shapes),
    )
    if diffs:
        raise init_mismatch(path, f"the {kind} model of {'+'.join(modalities)}", diffs, stage)
    return path
