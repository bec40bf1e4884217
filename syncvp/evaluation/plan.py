"""Everything an evaluation needs, resolved and checked before any sampling starts.

`plan_evaluation` checks the store, the model files, the conditions and the noise modality
against the dataset, resolves the metric weights (`syncvp.metrics.plan.plan_metrics`: a
configured but missing file is an error naming it; a null key lists the metric as skipped),
and fixes the batches and the settings. A setting is one evaluated variant: which modalities
are observed (`condition`) and optional Gaussian noise on one observed modality's context.

Next to the model's settings, the plan holds the reference settings scored on the same videos
and seeds (`references`, in this order):

| label | source | what |
| --- | --- | --- |
| `single-<condition>` | `single` | each modality by its stage-1 model (`evaluate.baselines: single`) |
| `copy_last` | `copy_last` | the last context frame repeated (always) |
| `flow` | `flow` | the last context frame carried along its optical flow (`baselines`; >= 2 context frames) |
| `autoencoder` | `autoencoder` | GT future chunks through the future autoencoders: the ceiling (`baselines`) |
| `ground_truth` | `ground_truth` | the GT future frames, scored only for the pair metrics `alignment` and `flicker` (their reference values) |

The pair metrics `alignment` and `flicker` apply to the pairs (first image modality, each other
image modality); a dataset with fewer than two image modalities lists them under `skipped` with
the reason.

Per-batch results live under `<eval>/<ds>/work/<fingerprint>/`; the fingerprint hashes the model
files, the store, every option that changes a result and the library code (`code_digest`), so
stale batches are never reused: a rerun after a code change computes every batch again. The speed
options `compile`, `channels_last` and `cuda_graphs` (params `run`, applied to the sampler's
denoiser) are in it too: they give the plain samples only within float tolerance, so the batches
of a compiled (or graph-replayed) and an eager evaluation are kept apart rather than mixed in one
report.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from syncvp.config.data import DatasetConfig
from syncvp.config.diffusion import SamplingConfig
from syncvp.config.evaluate import ALL, EvaluateConfig, given_of
from syncvp.config.layout import PathsConfig, batch_file
from syncvp.config.loader import FieldError, to_plain
from syncvp.config.roles import RolePair
from syncvp.config.runtime import WeightsConfig
from syncvp.data.store import read_info
from syncvp.figures import class_names
from syncvp.io.digest import code_digest, file_md5
from syncvp.io.model_file import rerun_hint
from syncvp.metrics.plan import CLASS_METRICS, FIELD_METRICS, IMAGE_METRICS, PAIR_METRICS, MetricPlan, plan_metrics
from syncvp.models.diffusion_file import ModelFileError
from syncvp.prediction.load import context_role

BASELINE = "copy_last"  # the label of the copy-last-context-frame baseline
AUTOENCODER, GROUND_TRUTH, SINGLE, FLOW = "autoencoder", "ground_truth", "single", "flow"  # reference labels / sources


class EvaluationError(ValueError):
    """An evaluation cannot run as configured (names the file, key or value)."""


@dataclass(frozen=True)
class Setting:
    """One evaluated variant.

    Attributes:
        label: its key in metrics.json: "all", a modality name (only it observed), with
            "-noise-<m>-<sigma>" appended for noisy context ("." written as "p").
        condition: "all" or the one observed modality.
        present: the observed modalities.
        noise: (modality, sigma in 0-255 units) or None.
        source: what predicts: "model" (the evaluated model), or a reference: "single" (the
            stage-1 models, label "single-<condition>"), "copy_last", "autoencoder", "ground_truth".
        given: modality completion (condition "complete-<m>"): the modalities given in full,
            context and future (their GT is their "prediction"; they are not scored, only paired
            in `alignment`); the others are completed (`Predictor.complete`).
    """

    label: str
    condition: str
    present: tuple[str, ...]
    noise: tuple[str, float] | None = None
    source: str = "model"
    given: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvaluationPlan:
    """A checked evaluation of one dataset (small and picklable: paths and configs only)."""

    dataset: str
    config: DatasetConfig
    evaluate: EvaluateConfig
    sampling: SamplingConfig
    store: Path
    model_files: dict[str, Path]  # "joint" or each modality -> diffusion-model file
    autoencoders: dict[str, RolePair[Path]]  # modality -> its context and future autoencoder files
    kinds: dict[str, str]  # modality -> "image" | "field"
    fields: dict[str, tuple[float, float, str]]  # field modality -> (norm_min, norm_max, units)
    batches: tuple[tuple[int, int], ...]  # [start, stop) video ranges
    settings: tuple[Setting, ...]
    metric_plan: MetricPlan
    out_dir: Path
    work_dir: Path
    fingerprint: str
    device: str = "cpu"
    references: tuple[Setting, ...] = ()  # single-<condition>, copy_last, autoencoder, ground_truth
    single_files: dict[str, Path] = field(default_factory=dict)  # modality -> stage-1 file (single baseline)
    pairs: tuple[tuple[str, str], ...] = ()  # (a, b) image modalities scored with the pair metrics
    classes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # class-map modality -> class names (pictures)
    compile: bool = False  # run.compile: torch.compile the predictors' diffusion models (speed only)
    channels_last: bool = False  # run.channels_last: their 2-D convolutions channels-last (speed only)
    cuda_graphs: bool = False  # run.cuda_graphs: their denoiser replayed from a CUDA graph per chunk (speed only)

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.config.modalities

    @property
    def labels(self) -> tuple[str, ...]:
        """Every setting's label: the model's settings, then the references."""
        return tuple(s.label for s in (*self.settings, *self.references))

    def setting(self, label: str) -> Setting:
        return next(s for s in (*self.settings, *self.references) if s.label == label)

    def jobs(self) -> list[tuple[str, int]]:
        """(label, batch) of every batch file, batch by batch (settings of one batch share work)."""
        return [(label, k) for k in range(len(self.batches)) for label in self.labels]

    @property
    def frames(self) -> int:
        """Frames read per test video: context + rollout."""
        return self.config.context_frames + self.config.rollout_frames

    def metrics_for(self, modality: str) -> tuple[str, ...]:
        """The available metrics that apply to the modality's kind (class maps: the image metrics and
        the class metrics)."""
        allowed = FIELD_METRICS if self.kinds[modality] == "field" else IMAGE_METRICS
        allowed += CLASS_METRICS if modality in self.classes else ()
        return tuple(m for m in self.metric_plan.available if m in allowed)

    def input_files(self) -> list[Path]:
        """Every file a batch result depends on (hashed into cache keys)."""
        return [
            self.store,
            *self.model_files.values(),
            *self.single_files.values(),
            *(p for pair in self.autoencoders.values() for p in (pair.context, pair.future)),
        ]

    def batch_file(self, label: str, index: int) -> Path:
        return batch_file(self.work_dir, label, index)

    def sample_file(self, label: str, index: int) -> Path:
        return batch_file(self.work_dir, label, index, "samples")


def _label(condition: str, noise: tuple[str, float] | None) -> str:
    if noise is None:
        return condition
    return f"{condition}-noise-{noise[0]}-{noise[1]:g}".replace(".", "p")


def settings_for(evaluate: EvaluateConfig, modalities: tuple[str, ...]) -> tuple[Setting, ...]:
    """Clean settings per condition, then each nonzero sigma for conditions that observe the noisy modality."""
    try:
        conditions = evaluate.check_modalities(modalities)
    except FieldError as exc:
        raise EvaluationError(str(exc)) from None
    noisy = evaluate.noise.modality
    out = []
    for cond in conditions:
        given = given_of(cond)
        if given is not None:  # completion: no noise variants (the given frames are the GT)
            out.append(Setting(cond, cond, (given,), given=(given,)))
            continue
        present = tuple(modalities) if cond == ALL else (cond,)
        out.append(Setting(_label(cond, None), cond, present))
        if noisy in present:
            out += [
                Setting(_label(cond, (noisy, s)), cond, present, (noisy, s)) for s in evaluate.noise.sigmas if s > 0
            ]
    return tuple(out)


def references_for(evaluate: EvaluateConfig, settings: tuple[Setting, ...], pairs: bool) -> tuple[Setting, ...]:
    """`single-<condition>` per clean condition (baseline single), copy_last, autoencoder (baseline),
    ground_truth (when alignment is scored)."""
    out = [
        Setting(f"{SINGLE}-{s.condition}", s.condition, s.present, source=SINGLE)
        for s in settings
        if s.noise is None and not s.given and SINGLE in evaluate.baselines
    ]
    out.append(Setting(BASELINE, ALL, (), source=BASELINE))
    if FLOW in evaluate.baselines:
        out.append(Setting(FLOW, ALL, (), source=FLOW))
    if AUTOENCODER in evaluate.baselines:
        out.append(Setting(AUTOENCODER, ALL, (), source=AUTOENCODER))
    if pairs:
        out.append(Setting(GROUND_TRUTH, ALL, (), source=GROUND_TRUTH))
    return tuple(out)


def alignment_pairs(dataset: str, kinds: dict[str, str], metric_plan: MetricPlan) -> tuple[tuple, MetricPlan]:
    """(pairs (first image modality, each other one), the metric plan with the pair metrics
    (alignment, flicker) skipped when the dataset has fewer than two image modalities)."""
    images = [m for m, k in kinds.items() if k == "image"]
    asked = [m for m in PAIR_METRICS if m in metric_plan.available]
    if not asked:
        return (), metric_plan
    if len(images) < 2:
        why = {m: f"{m} needs two image modalities; dataset {dataset!r} has {images or 'none'}" for m in asked}
        return (), dataclasses.replace(metric_plan, skipped={**metric_plan.skipped, **why})
    return tuple((images[0], b) for b in images[1:]), metric_plan


def single_files(
    dataset: str, evaluate: EvaluateConfig, modalities: tuple[str, ...], paths: PathsConfig
) -> dict[str, Path]:
    """The stage-1 files the `single` baseline needs (checked: a missing one is an error naming it)."""
    if SINGLE not in evaluate.baselines:
        return {}
    files = {m: paths.single(dataset, m).model for m in modalities}
    for m, path in files.items():
        if not path.is_file():
            raise ModelFileError(
                f"{path} does not exist: the single baseline (evaluate.baselines) needs the stage-1 "
                f"model of {m!r}; train it (`dvc repro train_single@{dataset}-{m}`) or remove "
                f"single from evaluate.baselines"
            )
    return files


def model_files(dataset: str, evaluate: EvaluateConfig, modalities: tuple[str, ...], paths: PathsConfig):
    """(diffusion-model files, autoencoder files) by the project's file conventions."""
    if evaluate.model == "joint":
        models = {"joint": paths.joint(dataset).model}
    else:
        models = {m: paths.single(dataset, m).model for m in modalities}
    first = next(iter(models.values()))
    role = context_role(first) if first.is_file() else "context"  # a missing model file is reported by the caller
    aes = {
        m: RolePair(
            context=paths.autoencoder(dataset, m, role).model, future=paths.autoencoder(dataset, m, "future").model
        )
        for m in modalities
    }
    return models, aes


def _fingerprint(files: list[Path], options: dict) -> str:
    text = json.dumps({"files": [file_md5(p) for p in files], "options": options}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_evaluation(
    dataset: str,
    config: DatasetConfig,
    evaluate: EvaluateConfig,
    sampling: SamplingConfig,
    weights: WeightsConfig,
    paths: PathsConfig,
    device: str = "cpu",
    *,
    compile: bool = False,
    channels_last: bool = False,
    cuda_graphs: bool = False,
) -> EvaluationPlan:
    """Check inputs and resolve weights; nothing is sampled. Raises EvaluationError,
    ModelFileError or MissingWeightsError naming what is wrong. `compile`, `channels_last` and
    `cuda_graphs` (params `run`) are the speed options of the sampler's denoiser (`load_predictor`)."""
    store = paths.store(dataset, evaluate.split)
    if not store.is_file():
        raise EvaluationError(f"{store} does not exist: run `dvc repro prepare@{dataset}` first")
    info = read_info(store, require=config.modalities)
    if info.frames < config.context_frames + config.rollout_frames:
        raise EvaluationError(
            f"{store}: videos have {info.frames} frames, the evaluation needs context_frames "
            f"{config.context_frames} + rollout_frames {config.rollout_frames}"
        )
    if FLOW in evaluate.baselines and config.context_frames < 2:
        raise EvaluationError(
            f"evaluate.baselines: flow extrapolates the motion between the last two context frames; "
            f"dataset {dataset!r} has context_frames {config.context_frames}"
        )
    models, aes = model_files(dataset, evaluate, config.modalities, paths)
    ae_files = [p for pair in aes.values() for p in (pair.context, pair.future)]
    for path in [*models.values(), *ae_files]:
        if path.is_dir():
            raise ModelFileError(f"{path} is a directory, not a model file: {rerun_hint(path)}")
        if not path.is_file():
            raise ModelFileError(f"{path} does not exist: train it first (`dvc repro`)")
    singles = single_files(dataset, evaluate, config.modalities, paths)
    settings = settings_for(evaluate, config.modalities)
    n = info.videos if evaluate.videos is None else min(evaluate.videos, info.videos)
    bs = evaluate.batch_size
    batches = tuple((s, min(s + bs, n)) for s in range(0, n, bs))
    kinds = {m: info.modalities[m].kind for m in config.modalities}
    pairs, metric_plan = alignment_pairs(dataset, kinds, plan_metrics(evaluate.metrics, weights, evaluate.trajectories))
    if "fvd16" in metric_plan.available and config.context_frames + config.rollout_frames < 16:
        raise EvaluationError(
            f"evaluate.metrics: fvd16 scores 16-frame clips (context + predicted frames); dataset {dataset!r} "
            f"has context_frames {config.context_frames} + rollout_frames {config.rollout_frames}: remove fvd16 "
            f"or predict more frames"
        )
    fields = {
        m: (float(a["norm_min"]), float(a["norm_max"]), str(a["units"]))
        for m, a in ((m, info.modalities[m].attrs) for m in config.modalities)
        if kinds[m] == "field"
    }
    classes = {m: names for m in config.modalities if (names := class_names(info.modalities[m].attrs))}
    options = {
        "dataset": to_plain(config),
        "evaluate": to_plain(evaluate),
        "sampling": to_plain(sampling),
        "metrics": sorted(metric_plan.available),
        "device": device,
        "compile": compile,
        "channels_last": channels_last,
        "cuda_graphs": cuda_graphs,
        "code": code_digest(),
    }
    files = [store, *models.values(), *singles.values(), *ae_files]
    fp = _fingerprint(files, options)
    out = paths.evaluation(dataset)
    return EvaluationPlan(
        dataset=dataset,
        config=config,
        evaluate=evaluate,
        sampling=sampling,
        store=store,
        model_files=models,
        autoencoders=aes,
        kinds=kinds,
        fields=fields,
        batches=batches,
        settings=settings,
        metric_plan=metric_plan,
        out_dir=out.root,
        work_dir=out.run(fp),
        fingerprint=fp,
        device=device,
        references=references_for(evaluate, settings, bool(pairs)),
        single_files=singles,
        pairs=pairs,
        classes=classes,
        compile=compile,
        channels_last=channels_last,
        cuda_graphs=cuda_graphs,
    )
