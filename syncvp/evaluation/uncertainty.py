"""Spread maps of the N >= 2 trajectories, and the spread-skill figure, under `<eval>/<ds>/uncertainty/`.

For each setting with N >= 2 trajectories (the model's and the stage-1 `single-*` references;
copy-last, flow and the autoencoder have one trajectory, no spread), on the sample
videos (the first `evaluate.samples`):

- `uncertainty/<setting>.npz`: one float32 array per modality, [videos, lead frames, H, W]: the
  per-pixel spread, sqrt(mean over channels of the unbiased variance over the N trajectories)
  (for one channel: the std over trajectories), in the modality's units: 0-255 levels for images
  (the rounded uint8 predictions), K / Pa for fields (NaN where the store's `valid` mask is 0);
  plus `lead` (1 = the first predicted frame) and `trajectories` (N);
- `uncertainty/<setting>.png`: those maps as a grid, a row per (video, modality), a column per
  lead frame, turbo over [0, the modality's largest spread in any setting] (one scale per
  modality for the whole evaluation, so settings compare by colour) with a colour bar;
- `uncertainty/<mode>-<modality>-spread.png` (when `evaluate.metrics` has `spread`): per lead
  frame, the spread sqrt(V) and the skill (RMSE of the ensemble mean) of every setting on every
  evaluated video (left) and their ratio, the spread-skill ratio, with 1 marked (right); see
  `syncvp.metrics.ensemble`. A calibrated ensemble has both curves together and the ratio near 1.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from syncvp.figures import spread_grid, spread_scale
from syncvp.io.atomic import atomic_path
from syncvp.metrics.images import quantise
from syncvp.metrics.report import Row
from syncvp.metrics.weather import FieldSpec, to_physical
from syncvp.viz import save_png

SPREAD_KEY = "spread."  # prefix of the spread arrays in a batch's sample file
IMAGE_UNITS = "0-255"


def spread_maps(
    trajectories: Sequence[Mapping[str, Tensor]], fields: Mapping[str, FieldSpec], valid: Tensor | None = None
) -> dict[str, np.ndarray]:
    """N >= 2 trajectories {m: [B, C, T, H, W]} (model space or uint8) -> {m: float32 [B, T, H, W]}:
    sqrt(mean over C of the unbiased variance over trajectories), in 0-255 levels or the field's
    units (NaN at invalid points, `valid` [B, 1, T, H, W] of the predicted frames); {} for N = 1."""
    if len(trajectories) < 2:
        return {}
    out = {}
    for m in trajectories[0]:
        spec = fields.get(m)
        members = torch.stack(
            [to_physical(t[m], spec) if spec else quantise(t[m], "round").double() for t in trajectories]
        )
        spread = members.var(dim=0, unbiased=True).mean(dim=1).sqrt()
        if spec is not None and valid is not None:
            spread = torch.where(valid[:, 0].bool(), spread, torch.full_like(spread, float("nan")))
        out[m] = spread.float().numpy()
    return out


def _collect(files: Sequence[Path]) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for path in files:
        if path.is_file():
            with np.load(path) as data:
                for key in data.files:
                    if key.startswith(SPREAD_KEY):
                        parts[key[len(SPREAD_KEY) :]].append(data[key])
    return {m: np.concatenate(v) for m, v in parts.items()}


def write_spread_maps(
    directory: Path, settings: Mapping[str, Sequence[Path]], units: Mapping[str, str], trajectories: int
) -> dict[str, float]:
    """`<setting>.npz` and `<setting>.png` for each setting whose sample files hold spread maps;
    returns each modality's colour scale (the upper end)."""
    maps = {label: m for label, m in ((label, _collect(files)) for label, files in settings.items()) if m}
    scales: dict[str, float] = {}
    for per_mod in maps.values():
        for m, v in per_mod.items():
            scales[m] = max(scales.get(m, 0.0), spread_scale(v))
    for label, per_mod in maps.items():
        lead = np.arange(1, next(iter(per_mod.values())).shape[1] + 1)
        with atomic_path(directory / f"{label}.npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, lead=lead, trajectories=np.array(trajectories), **per_mod)
        rows = [
            ([f"video {v + 1}: {m}", f"std over {trajectories}"], arr[v], scales[m], units.get(m, IMAGE_UNITS))
            for v in range(next(iter(per_mod.values())).shape[0])
            for m, arr in per_mod.items()
        ]
        title = f"{label}: spread over {trajectories} trajectories per pixel and lead frame"
        save_png(directory / f"{label}.png", spread_grid(rows, title))
    return scales


def write_spread_skill(directory: Path, curves: Sequence[Row]) -> list[Path]:
    """`<mode>-<modality>-spread.png`: spread and skill per lead frame (left), their ratio (right)."""
    from matplotlib.figure import Figure

    wanted = ("spread", "spread_std", "rmse_ensemble_mean")
    series: dict[tuple[str, str], dict[str, dict[str, list[tuple[int, float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in curves:
        if r.metric in wanted:
            series[(r.mode, r.modality)][r.condition][r.metric].append((r.frame, r.value))
    written = []
    for (mode, modality), by_label in sorted(series.items()):
        fig = Figure(figsize=(9, 3.4), dpi=100)
        left, right = fig.subplots(1, 2)
        unit = next((r.units for r in curves if r.modality == modality and r.metric == "spread_std"), "")
        for i, (label, by_metric) in enumerate(sorted(by_label.items())):
            colour = f"C{i % 10}"
            for metric, style, name in (("spread_std", "-", "spread"), ("rmse_ensemble_mean", "--", "RMSE of mean")):
                pts = sorted(by_metric.get(metric, []))
                left.plot([f for f, _ in pts], [v for _, v in pts], style, color=colour, label=f"{label}: {name}")
            pts = sorted(by_metric.get("spread", []))
            right.plot([f for f, _ in pts], [v for _, v in pts], "-o", color=colour, ms=3, label=label)
        right.axhline(1.0, color="grey", lw=0.8, ls=":")
        left.set(xlabel="lead frame", ylabel=f"{modality} ({unit})", title="spread (solid) and skill (dashed)")
        right.set(xlabel="lead frame", ylabel="spread / skill", title="spread-skill ratio (1: calibrated)")
        for ax in (left, right):
            ax.xaxis.get_major_locator().set_params(integer=True)
        left.legend(fontsize=7)
        right.legend(fontsize=7)
        fig.suptitle(f"{mode}: {modality}", fontsize=10)
        fig.tight_layout()
        path = directory / f"{mode}-{modality}-spread.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        written.append(path)
    return written
