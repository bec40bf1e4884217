"""The file contract: where every artifact lives and what every trained unit is called.

`PathsConfig` (the `paths` section) holds the five roots; it and the folder types below are the one
place that spells a path or a file name of the pipeline. Pure path arithmetic: nothing here touches
a file. `dvc.yaml` spells the same paths as `${paths...}` templates (it cannot call Python);
tests/test_layout.py checks that the two agree.

    <raw>/<dataset>/                          raw inputs (a synthetic video source: <split>.nc)
    <interim>/<dataset>/depth/<video>.npz     pseudo-depth maps
    <processed>/<dataset>/                    ClipStores: <split>.nc, summary.json, preview.png
    <models>/<dataset>-<modality>-<role>/     AutoencoderFiles: autoencoder.pt, metrics.json, ...
    <models>/<dataset>-<modality>/            DiffusionFiles (stage 1): diffusion.pt, metrics.json, ...
    <models>/<dataset>/                       DiffusionFiles (joint): joint.pt, metrics.json, ...
    <eval>/<dataset>/                         EvaluationFiles: metrics.json, tables/, plots/, samples/, uncertainty/, work/

Unit names: `<dataset>-<modality>-<context|future>` (autoencoders), `<dataset>-<modality>`
(stage 1), `<dataset>` (joint); dataset and modality names never contain '-'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syncvp.config.loader import require
from syncvp.config.roles import ROLES

SPLITS = ("train", "val", "test")
METRICS = "metrics.json"  # DVC metrics of every training stage and of evaluation (numbers only)
SKIPPED = "skipped.json"  # evaluation: {metric: why it was not computed} (an output, not a metric)
PLOTS = "plots"  # DVC plots folder (step- or frame-indexed .tsv files)
LIVE = "dvclive"  # DVCLive folder of a trained unit: plots/metrics/<name>.tsv (step-wise), metrics.json (latest step)
WORK = "work"  # resumable state a rerun keeps (persist, not cached by DVC)
COMPARE = "compare.md"  # the evaluation's comparison table, in tables/


# --------------------------------------------------------------------------------------------
# unit names


def autoencoder_unit(dataset: str, modality: str, role: str) -> str:
    return f"{dataset}-{modality}-{role}"


def single_unit(dataset: str, modality: str) -> str:
    return f"{dataset}-{modality}"


def parse_unit(unit: str) -> tuple[str, str, str | None]:
    """Split `<dataset>-<modality>[-<role>]` (names never contain '-')."""
    parts = unit.split("-")
    if len(parts) == 2:
        return parts[0], parts[1], None
    if len(parts) == 3 and parts[2] in ROLES:
        return parts[0], parts[1], parts[2]
    raise ValueError(f"unit {unit!r} is not <dataset>-<modality>[-context|-future]")


# --------------------------------------------------------------------------------------------
# the files of one folder (a final folder, or the temporary one a stage writes before renaming it)


def split_file(folder: Path, split: str) -> Path:
    """`<folder>/<split>.nc`: a clip store, or a synthetic video source's raw split."""
    require(split in SPLITS, "split", f"must be one of {SPLITS}, got {split!r}")
    return Path(folder) / f"{split}.nc"


def depth_file(folder: Path, video_id: str) -> Path:
    """`<interim>/<dataset>/depth/<video_id>.npz`: the pseudo-depth of one raw video."""
    return Path(folder) / "depth" / f"{video_id}.npz"


@dataclass(frozen=True)
class ClipStores:
    """`<processed>/<dataset>/`: one clip store per split, `summary.json`, `preview.png`."""

    root: Path

    def store(self, split: str) -> Path:
        return split_file(self.root, split)

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def preview(self) -> Path:
        return self.root / "preview.png"


@dataclass(frozen=True)
class _TrainedFiles:
    """What every training stage writes into its unit folder."""

    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    def plot(self, name: str) -> Path:
        """`plots/<name>.tsv`: one hand-written DVC plot (the diffusion context probe)."""
        return self.root / PLOTS / f"{name}.tsv"

    @property
    def live(self) -> Path:
        """`dvclive/`: the DVCLive folder the flow layer writes the step-wise training curves to."""
        return self.root / LIVE

    @property
    def live_plots(self) -> Path:
        """`dvclive/plots/`: every curve DVCLive writes (the joint stage's output: its file names
        hold the modalities, which dvc.yaml cannot spell)."""
        return self.live / "plots"

    def live_plot(self, name: str) -> Path:
        """`dvclive/plots/metrics/<name>.tsv`: one step-wise curve (columns step, <name>)."""
        return self.live_plots / "metrics" / f"{name}.tsv"

    @property
    def live_metrics(self) -> Path:
        """`dvclive/metrics.json`: the latest logged value of every curve and its step (updated live)."""
        return self.live / METRICS

    @property
    def work(self) -> Path:
        return self.root / WORK

    @property
    def status(self) -> Path:
        """`work/status.json`: the finished-run marker."""
        return self.work / "status.json"


@dataclass(frozen=True)
class AutoencoderFiles(_TrainedFiles):
    """`<models>/<dataset>-<modality>-<role>/`: autoencoder.pt, metrics.json, reconstruction.png,
    dvclive/ (psnr, ssim, loss, l1 curves); work/<phase>.pt (checkpoints), work/status.json."""

    @property
    def model(self) -> Path:
        return self.root / "autoencoder.pt"

    @property
    def reconstruction(self) -> Path:
        return self.root / "reconstruction.png"

    def checkpoint(self, phase: str) -> Path:
        return self.work / f"{phase}.pt"


@dataclass(frozen=True)
class DiffusionFiles(_TrainedFiles):
    """`<models>/<unit>/` of a stage-1 (`diffusion.pt`) or joint (`joint.pt`) model, with metrics.json,
    timings.json (not tracked by DVC), loss.png, dvclive/ (loss[, loss_<m>] curves), plots/context.tsv; work/train.pt (the
    checkpoint), work/status.json and work/latents-<modality>-<key>.pt (latent caches)."""

    joint: bool = False

    @property
    def model(self) -> Path:
        return self.root / ("joint.pt" if self.joint else "diffusion.pt")

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"

    @property
    def loss_plot(self) -> Path:
        return self.root / "loss.png"

    @property
    def checkpoint(self) -> Path:
        return self.work / "train.pt"


def latent_cache_name(modality: str, key: str) -> str:
    """`latents-<modality>-<key>.pt`, in a diffusion unit's work folder."""
    return f"latents-{modality}-{key}.pt"


@dataclass(frozen=True)
class EvaluationFiles:
    """`<eval>/<dataset>/`: metrics.json, skipped.json, tables/ (summary/videos/curves.csv, compare.md),
    plots/, samples/, uncertainty/, report.html; work/<fingerprint>/<label>/{batch,samples}-<index>.npz (per-batch results)."""

    root: Path

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def skipped(self) -> Path:
        return self.root / SKIPPED

    @property
    def tables(self) -> Path:
        return self.root / "tables"

    def table(self, name: str) -> Path:
        """`tables/<name>`: summary.csv, videos.csv, curves.csv or compare.md."""
        return self.tables / name

    @property
    def plots(self) -> Path:
        return self.root / PLOTS

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def uncertainty(self) -> Path:
        """`uncertainty/`: spread maps (`<setting>.npz`, `.png`) and spread-skill figures."""
        return self.root / "uncertainty"

    @property
    def report(self) -> Path:
        """`report.html`: one self-contained page (table, curves, sample GIFs, params)."""
        return self.root / "report.html"

    @property
    def work(self) -> Path:
        return self.root / WORK

    def run(self, fingerprint: str) -> Path:
        """`work/<fingerprint>/`: the per-batch results of one set of inputs and options."""
        return self.work / fingerprint


def batch_file(work: Path, label: str, index: int, what: str = "batch") -> Path:
    """`<work>/<label>/<what>-<index>.npz`: one batch's results ("batch") or sample videos ("samples")."""
    return Path(work) / label / f"{what}-{index:04d}.npz"


# --------------------------------------------------------------------------------------------
# the `paths` section


@dataclass(frozen=True, kw_only=True)
class PathsConfig:
    """Every artifact location (relative to the repository root). `dvc.yaml` templates these.

    Attributes:
        raw: downloaded or generated inputs, one folder per dataset.
        interim: intermediate per-item products (pseudo-depth maps), one folder per dataset.
        processed: clip stores, `<processed>/<dataset>/<split>.nc`.
        models: checkpoints, one folder per trained unit.
        eval: evaluation outputs, one folder per dataset.
    """

    raw: Path
    interim: Path
    processed: Path
    models: Path
    eval: Path

    def raw_dir(self, dataset: str) -> Path:
        return self.raw / dataset

    def interim_dir(self, dataset: str) -> Path:
        return self.interim / dataset

    def processed_dir(self, dataset: str) -> Path:
        return self.processed / dataset

    def clip_stores(self, dataset: str) -> ClipStores:
        return ClipStores(self.processed_dir(dataset))

    def store(self, dataset: str, split: str) -> Path:
        """Path of the clip store of one dataset and split."""
        return self.clip_stores(dataset).store(split)

    def model_dir(self, unit: str) -> Path:
        return self.models / unit

    def autoencoder(self, dataset: str, modality: str, role: str) -> AutoencoderFiles:
        return AutoencoderFiles(self.model_dir(autoencoder_unit(dataset, modality, role)))

    def single(self, dataset: str, modality: str) -> DiffusionFiles:
        return DiffusionFiles(self.model_dir(single_unit(dataset, modality)))

    def joint(self, dataset: str) -> DiffusionFiles:
        return DiffusionFiles(self.model_dir(dataset), joint=True)

    def eval_dir(self, dataset: str) -> Path:
        return self.eval / dataset

    def evaluation(self, dataset: str) -> EvaluationFiles:
        return EvaluationFiles(self.eval_dir(dataset))
