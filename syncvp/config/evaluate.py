"""Section `evaluate`: the `evaluate` stage (rollout on a split, paper metrics, baselines, samples).

The protocol itself (docs/evaluation.md) lives in `syncvp.metrics`; this section chooses
what to run. Sampling uses the `sampling` section. Modality names in `conditions` and
`noise.modality` are checked against the evaluated dataset when the evaluation is planned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from syncvp.config.layout import SPLITS
from syncvp.config.loader import require

METRIC_NAMES = (
    "fvd",
    "fvd16",
    "ssim",
    "psnr",
    "lpips",
    "l2",
    "accuracy",
    "miou",
    "l1",
    "spread",
    "crps",
    "alignment",
    "flicker",
)  # syncvp.metrics.plan.METRICS (no torch here)
BASELINE_NAMES = ("single", "flow", "autoencoder")  # reference columns besides copy_last (always computed)
PROTOCOL_NAMES = ("paper", "standard")
ALL, EACH = "all", "each"
COMPLETE = "complete-"  # conditions complete-<m> (m given in full, the others completed) and complete-each


def given_of(condition: str) -> str | None:
    """The given modality of a completion condition `complete-<m>`, else None."""
    return condition[len(COMPLETE) :] if condition.startswith(COMPLETE) else None


@dataclass(frozen=True, kw_only=True)
class NoiseConfig:
    """Gaussian noise on one modality's observed context frames (the paper's robustness table).

    Attributes:
        modality: the modality whose context frames get noise, or null for no noise runs.
        sigmas: standard deviations in the modality's 0-255 units (1/127.5 in model space), each
            evaluated as an extra setting; 0 means the clean run (already evaluated, not repeated).
            Must be empty when `modality` is null (paper Table 3: [2.5, 5] on depth).
    """

    modality: str | None
    sigmas: tuple[float, ...]

    def __post_init__(self) -> None:
        require(
            self.modality is not None or not self.sigmas,
            "sigmas",
            f"noise.modality is null, so sigmas must be [], got {list(self.sigmas)}",
        )
        for i, s in enumerate(self.sigmas):
            require(s >= 0.0, f"sigmas[{i}]", f"must be >= 0, got {s}")
        require(len(set(self.sigmas)) == len(self.sigmas), "sigmas", f"has duplicates: {list(self.sigmas)}")


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig:
    """What the `evaluate` stage runs.

    Attributes:
        model: "joint" (the stage-2 model `<models>/<ds>/joint.pt`) or "single" (every modality
            by its own stage-1 model `<models>/<ds>-<m>/diffusion.pt`, for comparison; only the
            condition `all` applies).
        split: the clip store split evaluated (paper: test).
        videos: the first N videos of the split (null = all, the paper's protocol).
        batch_size: videos per batch (paper 16; the paper mode's min-max and batch means depend on it).
        trajectories: predicted trajectories per video N (paper 1 for tables, 100 for best-of-N).
        reduce: over N trajectories: "best" (the paper's best-of-N), "mean", or "both".
        conditions: observed-modality settings: "all" (every modality observed), a modality name
            (only that one observed; the others are predicted from zero conditioning), "each"
            (every single modality in turn), "complete-<m>" (modality completion: every frame of
            m, context and future, given; the others sampled for the same frames and scored on the
            future frames, `Predictor.complete`) or "complete-each" (complete-<m> for every m).
        noise: Gaussian noise on one modality's context (extra settings, see NoiseConfig).
        protocols: reporting modes: "paper" (SyncVP's couplings and scales) and/or "standard".
        metrics: metric names; image metrics (fvd, ssim, psnr, lpips, l2) apply to image
            modalities, l1 (physical units, masked) to field modalities, alignment (cross-modal
            edge alignment, `syncvp.metrics.alignment`) to the first image modality paired with
            each other one (skipped for datasets with fewer than two image modalities); spread
            (spread-skill ratio, every modality) and crps (fields) score the N trajectories as an
            ensemble (`syncvp.metrics.ensemble`; skipped with trajectories 1); accuracy (pixel
            accuracy) and miou (mean IoU) score class maps, decoded to their nearest class
            (`syncvp.metrics.classes`; other modalities ignore them). fvd and
            lpips need `weights.i3d` / `weights.lpips_alexnet`; with those null they are skipped
            and listed.
        baselines: reference columns scored next to the model on the same videos and seeds, besides
            the copy-last-frame baseline (always computed): "single" (each modality by its stage-1
            model, settings `single-<condition>`; not with model single) and "autoencoder" (GT
            future chunks through the future autoencoders: the ceiling of a latent model).
        samples: videos shown in the sample grid (PNG) and animation (GIF); 0 = none.
        seed: base seed of the sampling and context-noise streams (one stream per batch).
    """

    model: Literal["joint", "single"]
    split: str
    videos: int | None
    batch_size: int
    trajectories: int
    reduce: Literal["best", "mean", "both"]
    conditions: tuple[str, ...]
    noise: NoiseConfig
    protocols: tuple[Literal["paper", "standard"], ...]
    metrics: tuple[str, ...]
    baselines: tuple[str, ...]
    samples: int
    seed: int

    def __post_init__(self) -> None:
        require(self.split in SPLITS, "split", f"must be one of {list(SPLITS)}, got {self.split!r}")
        require(self.videos is None or self.videos >= 1, "videos", f"must be >= 1 or null, got {self.videos}")
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        require(self.trajectories >= 1, "trajectories", f"must be >= 1, got {self.trajectories}")
        require(len(self.conditions) >= 1, "conditions", "must list at least one condition")
        require(
            len(set(self.conditions)) == len(self.conditions), "conditions", f"has duplicates: {list(self.conditions)}"
        )
        require(
            self.model == "joint" or self.conditions == (ALL,),
            "conditions",
            f"a stage-1 (single) evaluation observes every modality: must be [all], got {list(self.conditions)}",
        )
        require(
            len(self.protocols) >= 1 and len(set(self.protocols)) == len(self.protocols),
            "protocols",
            f"must list paper and/or standard once each, got {list(self.protocols)}",
        )
        require(len(self.metrics) >= 1, "metrics", "must list at least one metric")
        for i, name in enumerate(self.metrics):
            require(name in METRIC_NAMES, f"metrics[{i}]", f"must be one of {list(METRIC_NAMES)}, got {name!r}")
        require(len(set(self.metrics)) == len(self.metrics), "metrics", f"has duplicates: {list(self.metrics)}")
        for i, name in enumerate(self.baselines):
            require(
                name in BASELINE_NAMES,
                f"baselines[{i}]",
                f"must be one of {list(BASELINE_NAMES)} (copy_last is always computed), got {name!r}",
            )
        require(len(set(self.baselines)) == len(self.baselines), "baselines", f"has duplicates: {list(self.baselines)}")
        require(
            self.model == "joint" or "single" not in self.baselines,
            "baselines",
            "the single baseline compares a joint model with the stage-1 models; with model single it "
            "is the model itself: remove single",
        )
        require(self.samples >= 0, "samples", f"must be >= 0, got {self.samples}")

    @property
    def trajectory_reductions(self) -> tuple[str, ...]:
        """The `Protocol.trajectories` this `reduce` asks for."""
        return {"best": ("best",), "mean": ("mean",), "both": ("best", "mean")}[self.reduce]

    def check_modalities(self, modalities: tuple[str, ...]) -> tuple[str, ...]:
        """`expand_conditions`, and `noise.modality` checked against the dataset's modalities."""
        conditions = self.expand_conditions(modalities)
        noisy = self.noise.modality
        require(
            noisy is None or noisy in modalities,
            "evaluate.noise.modality",
            f"{noisy!r} is not a modality of the dataset {list(modalities)}",
        )
        return conditions

    def expand_conditions(self, modalities: tuple[str, ...]) -> tuple[str, ...]:
        """The condition names for a dataset's modalities ("each" expanded), checked against them."""
        out: list[str] = []
        for i, c in enumerate(self.conditions):
            names = list(modalities) if c == EACH else [c]
            names = [COMPLETE + m for m in modalities] if c == COMPLETE + EACH else names
            given = given_of(c)
            require(
                c in (ALL, EACH) or c in modalities or given == EACH or given in modalities,
                f"evaluate.conditions[{i}]",
                f"{c!r} is neither all, each, a modality of the dataset {list(modalities)}, nor "
                f"complete-<one of them> / complete-each",
            )
            require(
                given is None or len(modalities) >= 2,
                f"evaluate.conditions[{i}]",
                f"{c!r}: completion needs a dataset of >= 2 modalities, got {list(modalities)}",
            )
            out += [n for n in names if n not in out]
        return tuple(out)
