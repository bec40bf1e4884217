"""Which metrics an evaluation can compute, decided before any sampling starts.

Two metrics need pretrained weights from params.yaml `weights` (nothing is ever downloaded):

| metric | key | file |
| --- | --- | --- |
| `fvd`, `fvd16` | `weights.i3d` | `i3d_pretrained_400.pt` |
| `lpips` | `weights.lpips_alexnet` | `alexnet-owt-7be5be79.pth` |

A key set to null means "not available": the metric is skipped and listed with the reason in
the output, never faked. A key naming a file that does not exist is an error
(`MissingWeightsError` naming the file, where to get it and where to put it), raised by
`plan_metrics` before any expensive work. `load_models` then builds the networks, strictly
loading the files, so a wrong file also fails before sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Protocol, Sequence

import torch
from torch import nn

from syncvp.io.weights import WeightsSpec, resolve_weights
from syncvp.metrics.i3d import I3D_WEIGHTS, load_i3d
from syncvp.metrics.lpips_alex import ALEXNET_WEIGHTS, build_lpips_alex, import_lpips

# spread (spread-skill ratio) and crps score the N >= 2 trajectories as an ensemble (syncvp.metrics.ensemble)
ENSEMBLE_METRICS = ("spread", "crps")
IMAGE_METRICS = ("fvd", "fvd16", "ssim", "psnr", "lpips", "l2", "spread")
FIELD_METRICS = ("l1", "spread", "crps")
# cross-modal, on pairs of image modalities (syncvp.metrics.alignment, syncvp.metrics.flicker)
PAIR_METRICS = ("alignment", "flicker")
CLASS_METRICS = ("accuracy", "miou")  # class-map modalities only, next to the image metrics (syncvp.metrics.classes)
METRICS = tuple(dict.fromkeys(IMAGE_METRICS + CLASS_METRICS + FIELD_METRICS + PAIR_METRICS))
NEEDS_WEIGHTS: dict[str, tuple[str, WeightsSpec]] = {
    "fvd": ("i3d", I3D_WEIGHTS),
    "fvd16": ("i3d", I3D_WEIGHTS),
    "lpips": ("lpips_alexnet", ALEXNET_WEIGHTS),
}


class MetricWeights(Protocol):
    """The weights entries the metrics read (params.yaml `weights`; `syncvp.config.WeightsConfig`)."""

    i3d: Path | None
    lpips_alexnet: Path | None


@dataclass(frozen=True)
class MetricPlan:
    """The outcome of `plan_metrics`.

    Attributes:
        requested: every metric asked for, in order.
        weights: metric -> resolved weights file, for the weighted metrics that will run.
        skipped: metric -> why it is not computed.
    """

    requested: tuple[str, ...]
    weights: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def available(self) -> tuple[str, ...]:
        return tuple(m for m in self.requested if m not in self.skipped)

    def select(self, metrics: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
        """Per-modality metric lists without the skipped metrics."""
        return {mod: tuple(m for m in names if m not in self.skipped) for mod, names in metrics.items()}


@dataclass
class MetricModels:
    """The networks the available metrics need (None where not needed)."""

    i3d: nn.Module | None = None
    lpips: nn.Module | None = None


def plan_metrics(metrics: Iterable[str], weights: MetricWeights, trajectories: int | None = None) -> MetricPlan:
    """Resolve the weights of `metrics`: null key -> skipped; configured but missing -> error.

    With `trajectories` < 2 the ensemble metrics (spread, crps) are skipped: one trajectory has no spread.
    """
    requested = tuple(dict.fromkeys(metrics))
    unknown = [m for m in requested if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(METRICS)}")
    paths, skipped = {}, {}
    for metric in requested:
        if metric in ENSEMBLE_METRICS and trajectories is not None and trajectories < 2:
            skipped[metric] = (
                f"evaluate.trajectories is {trajectories}: {metric} scores the spread of N >= 2 trajectories"
            )
            continue
        if metric not in NEEDS_WEIGHTS:
            continue
        attr, spec = NEEDS_WEIGHTS[metric]
        configured = getattr(weights, attr)
        if configured is None:
            skipped[metric] = f"params.yaml {spec.key} is null: {spec.title} needs {spec.filename} ({spec.url})"
            continue
        paths[metric] = resolve_weights(configured, spec)
        if metric == "lpips":
            import_lpips()  # a broken lpips/torchvision install fails here, not after sampling
    return MetricPlan(requested=requested, weights=paths, skipped=skipped)


def load_models(plan: MetricPlan, device: torch.device | str = "cpu") -> MetricModels:
    """Build the networks of the planned metrics from their local files (strict loads)."""
    models = MetricModels()
    i3d = plan.weights.get("fvd") or plan.weights.get("fvd16")
    if i3d is not None:
        models.i3d = load_i3d(i3d, device)
    if "lpips" in plan.weights:
        models.lpips = build_lpips_alex(plan.weights["lpips"], device)
    return models
