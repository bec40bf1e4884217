"""Sections `train_single` and `train_joint`: how the stage-1 diffusion models (one per dataset and
modality) and the stage-2 joint model (one per dataset) are trained (docs/method.md §3.2, §3.4, §4.4).

The architectures are the `unet`, `joint` and `diffusion` sections; the frozen autoencoders come
from `train_autoencoder`. Paper values are in the params.yaml comments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from syncvp.config.init_from import InitFrom, check_init
from syncvp.config.loader import require

LatentMode = Literal["precompute", "online"]


@dataclass(frozen=True, kw_only=True)
class EmaConfig:
    """The exponential moving average of the trained weights (the exported weights).

    Attributes:
        decay: target decay d in [0, 1): theta_ema <- d theta_ema + (1 - d) theta (paper 0.9999).
        every: optimizer steps between EMA updates (paper 25).
        warmup: use d_n = min(decay, (1 + n) / (10 + n)) at the n-th update (paper true).
    """

    decay: float
    every: int
    warmup: bool

    def __post_init__(self) -> None:
        require(0.0 <= self.decay < 1.0, "decay", f"must lie in [0, 1), got {self.decay}")
        require(self.every >= 1, "every", f"must be >= 1, got {self.every}")


@dataclass(frozen=True, kw_only=True)
class _TrainDiffusion:
    """Keys shared by both diffusion training stages.

    Attributes:
        steps: optimizer steps (paper 1e6 iterations).
        batch_size: clips per micro-batch (paper 8 per GPU on 8 GPUs).
        grad_accum: micro-batches accumulated per optimizer step (paper 1).
        lr: AdamW learning rate (paper 1e-4 stage 1, 1e-5 stage 2).
        betas: AdamW betas (paper [0.9, 0.999], the torch default).
        weight_decay: AdamW weight decay (paper 0.01).
        lr_min_ratio: the cosine decays lr to lr * lr_min_ratio at the last step (paper 0 for
            stage 1, 0.01 for stage 2).
        warmup_steps: linear learning-rate warm-up before the cosine (paper 0).
        amp: bf16 autocast of the UNet on CUDA (paper fp32); CPU runs are always fp32.
        cond_prob: probability that a sample's context conditioning is kept (paper 0.7). Stage 1:
            per-sample conditioning dropout; stage 2: per-modality keep probability of the
            `official` and `independent` patterns.
        ema: the EMA of the weights (`EmaConfig`).
        checkpoint_every: steps between resumable checkpoints (0 = only at the end).
        log_every: steps between progress reports.
        loss_curve_every: steps averaged into one point of the loss curves (`dvclive/plots/metrics/`).
        num_workers: DataLoader workers (0 = load in the training process; online latents only).
        latents: "precompute" encodes every training window once with the frozen autoencoders
            and caches the latents in the unit's work directory (keyed by the autoencoder files
            and the data); "online" encodes every batch (no cache, slower).
    """

    steps: int
    batch_size: int
    grad_accum: int
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    lr_min_ratio: float
    warmup_steps: int
    amp: bool
    cond_prob: float
    ema: EmaConfig
    checkpoint_every: int
    log_every: int
    loss_curve_every: int
    num_workers: int
    latents: LatentMode

    def __post_init__(self) -> None:
        for key in ("steps", "batch_size", "grad_accum", "log_every", "loss_curve_every"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        for key in ("warmup_steps", "checkpoint_every", "num_workers", "weight_decay"):
            require(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(all(0 <= b < 1 for b in self.betas), "betas", f"must lie in [0, 1), got {list(self.betas)}")
        require(0 <= self.lr_min_ratio <= 1, "lr_min_ratio", f"must lie in [0, 1], got {self.lr_min_ratio}")
        require(
            self.warmup_steps < self.steps, "warmup_steps", f"must be < steps ({self.steps}), got {self.warmup_steps}"
        )
        require(0.0 <= self.cond_prob <= 1.0, "cond_prob", f"must lie in [0, 1], got {self.cond_prob}")


@dataclass(frozen=True, kw_only=True)
class TrainSingleConfig(_TrainDiffusion):
    """Stage 1: one conditional latent diffusion model per dataset and modality (docs/method.md §3).

    Each sample keeps its context conditioning with probability `cond_prob` (per sample, not per
    batch as in the official code, docs/method.md §7.6); the target is always the future frames.
    See `_TrainDiffusion` for the other keys.

    Attributes:
        init: "scratch" (random weights drawn from the unit's seed) or "checkpoint" (start from
            the same unit of another run, `init_from`: a fine-tune).
        init_from: with init checkpoint, the models folder and dataset to start from
            (`syncvp.config.init_from`); null otherwise.
    """

    init: Literal["scratch", "checkpoint"]
    init_from: InitFrom | None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_init(self.init, self.init_from)


@dataclass(frozen=True, kw_only=True)
class TrainJointConfig(_TrainDiffusion):
    """Stage 2: the joint model over all modalities of a dataset (docs/method.md §4.4). Noise is shared or
    not by `joint.same_noise`; both targets are always the same future frames (docs/method.md §7.5).

    Attributes:
        init: "stage1" loads the stage-1 models' EMA weights into the branches (strictly; the
            paper), "scratch" (random initialisation; the ablation of supp. Tab. 2) or
            "checkpoint" (the whole joint model of another run, `init_from`: a fine-tune).
        init_from: with init checkpoint, the models folder and dataset to start from
            (`syncvp.config.init_from`); null otherwise.
        patterns: which modalities' conditioning each sample keeps, drawn per sample:
            "official" (independent keep with `cond_prob`, but never none: the first modality is
            restored, the released code's effective rates), "independent" (independent keep with
            `cond_prob`, all dropped allowed), or "explicit" (the `explicit` mapping).
        explicit: with patterns "explicit": {present modalities joined by "+": probability},
            "" for none, e.g. {"rgb+depth": 0.5, "rgb": 0.2, "depth": 0.2, "": 0.1}; the
            probabilities sum to 1 and the names must be the dataset's modalities (checked when
            the stage plans). null (or {}) otherwise.
    """

    init: Literal["stage1", "scratch", "checkpoint"]
    init_from: InitFrom | None
    patterns: Literal["official", "independent", "explicit"]
    explicit: dict[str, float] | None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_init(self.init, self.init_from)
        if self.patterns != "explicit":
            require(not self.explicit, "explicit", f"must be null unless patterns is explicit, got {self.explicit}")
            return
        require(bool(self.explicit), "explicit", 'patterns is explicit: give {"a+b": p, "a": p, ...}')
        seen = set()
        for key, p in self.explicit.items():
            names = frozenset(explicit_names(key))
            require(names not in seen, f"explicit.{key}", "names the same set of modalities as another entry")
            seen.add(names)
            require(p >= 0, f"explicit.{key}", f"probability must be >= 0, got {p}")
        total = sum(self.explicit.values())
        require(math.isclose(total, 1.0, abs_tol=1e-6), "explicit", f"probabilities must sum to 1, got {total}")


def check_explicit_modalities(train: "TrainJointConfig", modalities, dataset: str | None = None) -> None:
    """With patterns "explicit", every modality an `explicit` key names must be one of the
    dataset's (`syncvp.training.diffusion_job.resolve_patterns` and `Params` both apply this).
    The message names the dataset when given, and the way out: one `explicit` mapping serves
    every trained dataset, so datasets with other modalities need the other patterns."""
    if train.patterns != "explicit":
        return
    modalities = list(modalities)
    for key in train.explicit:
        unknown = [n for n in explicit_names(key) if n not in modalities]
        which = f" {dataset!r}" if dataset else ""
        require(
            not unknown,
            f"train_joint.explicit.{key}",
            f"names {unknown}, not modalities of the dataset{which} ({modalities}); `explicit` serves every "
            "trained dataset, so with datasets of other modalities set train_joint.patterns to official or "
            "independent (and explicit: null)",
        )


def explicit_names(key: str) -> tuple[str, ...]:
    """The modalities of an `explicit` pattern key: "rgb+depth" -> ("rgb", "depth"), "" -> ()."""
    return tuple(n.strip() for n in key.split("+")) if key.strip() else ()
