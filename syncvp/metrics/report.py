"""From cached per-batch results to the reported numbers: summary rows, per-video rows, per-frame
curves, skipped metrics; written as metrics.json (numbers only), skipped.json and CSV tables.

For a mode (`syncvp.metrics.protocol.Protocol`), each metric of each modality is reduced:

1. over the N trajectories per video: "best" (max SSIM / PSNR, min LPIPS / L2 / L1; the
   per-frame curve follows the trajectory picked for the video) or "mean";
2. over videos: "batch_means" (mean over batches of each batch's mean, SyncVP's AverageMeter)
   or "videos" (mean over all videos);
3. multiplied by the mode's scale (paper: LPIPS x1000, L2 x100).

FVD pools all batches: the GT features against all predicted features (every trajectory),
reported with trajectories "all". Curves give the value per predicted frame (frame 1 = the
first predicted frame); for SSIM and LPIPS the curve's mean equals the summary value.

The ensemble metrics (syncvp.metrics.ensemble) are stored per video and frame for the N
trajectories together and reported with trajectories "all": `spread` (the spread-skill ratio
sqrt(V) / sqrt(E), V the (N+1)/N-corrected mean variance and E the mean squared error of the
ensemble mean, each reduced over videos first, then over frames for the summary), next to
`spread_std` = sqrt(V) and `rmse_ensemble_mean` = sqrt(E) in the modality's units; `crps` (fair
CRPS) next to `l1_ensemble_mean`.

`alignment` (syncvp.metrics.alignment) and `flicker` (syncvp.metrics.flicker) are NaN where a frame or video has nothing to score: such
values are ignored by its means, and best-of-N picks the highest value that is not NaN.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from syncvp.io.atomic import atomic_path, write_json
from syncvp.metrics.alignment import nanmean
from syncvp.metrics.fvd import FeatureAccumulator, frechet_distance
from syncvp.metrics.protocol import BatchResult, MetricValues, Protocol

HIGHER_IS_BETTER = {
    "ssim": True,
    "psnr": True,
    "lpips": False,
    "l2": False,
    "l1": False,
    "fvd": False,
    "fvd16": False,
    "alignment": True,
    "flicker": False,
    "accuracy": True,
    "miou": True,
}
SKIPS_NAN = frozenset({"alignment", "flicker"})  # metrics whose NaN values mean "nothing to score here"
UNITS = {"psnr": "dB"}
# reported in the modality's own units: fields' physical units, images' 0-255 levels
PHYSICAL = frozenset({"l1", "crps", "l1_ensemble_mean", "spread_std", "rmse_ensemble_mean"})
IMAGE_UNITS = "0-255"
ENSEMBLE_STORED = {"crps": "crps", "crps_l1": "l1_ensemble_mean"}  # stored key -> reported metric
SPREAD_PARTS = ("spread_var", "spread_mse")  # syncvp.metrics.ensemble.spread_skill's V and E


@dataclass(frozen=True)
class Row:
    """One reported number. `video` is set for per-video rows, `frame` for curve points."""

    dataset: str
    condition: str
    mode: str
    modality: str
    metric: str
    trajectories: str  # "best" | "mean" | "all" (FVD)
    value: float
    scale: float = 1.0
    units: str = ""
    video: str | None = None
    frame: int | None = None


@dataclass
class EvalReport:
    """Rows of one or more (dataset, condition, mode) summaries, and the metrics left out."""

    rows: list[Row] = field(default_factory=list)
    videos: list[Row] = field(default_factory=list)
    curves: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def merge(self, other: "EvalReport") -> "EvalReport":
        return EvalReport(
            self.rows + other.rows,
            self.videos + other.videos,
            self.curves + other.curves,
            {**self.skipped, **other.skipped},
        )

    def metrics_json(self) -> dict:
        """{dataset: {condition: {mode: {modality: {metric | metric_mean: value}}}}: numbers only
        (DVC metrics); the skipped metrics and their reasons are in `skipped_json`.

        `metric` is best-of-N (or FVD), `metric_mean` the mean over N; non-finite values are
        written as the strings "inf", "-inf", "nan".
        """
        out: dict = {}
        for r in self.rows:
            key = f"{r.metric}_mean" if r.trajectories == "mean" else r.metric
            leaf = out.setdefault(r.dataset, {}).setdefault(r.condition, {}).setdefault(r.mode, {})
            leaf.setdefault(r.modality, {})[key] = _json_number(r.value)
        return out

    def skipped_json(self) -> dict[str, str]:
        """{metric: why it was not computed}: skipped.json, kept out of metrics.json (DVC would show
        each reason as a metric column)."""
        return dict(self.skipped)

    def write(self, directory: Path | str) -> None:
        """metrics.json, skipped.json, summary.csv, videos.csv, curves.csv in `directory` (each written
        atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / "skipped.json", self.skipped_json())  # the names of syncvp.config.layout
        write_json(directory / "metrics.json", self.metrics_json())
        for name, rows in (("summary", self.rows), ("videos", self.videos), ("curves", self.curves)):
            write_rows(directory / f"{name}.csv", rows)


def _json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def write_rows(path: Path | str, rows: Sequence[Row]) -> None:
    """Rows as CSV (one column per Row field), written atomically."""
    names = [f.name for f in dataclasses.fields(Row)]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in rows)


def over_trajectories(values: MetricValues, metric: str, how: str) -> tuple[np.ndarray, np.ndarray]:
    """(per video [B], per frame [B, T]) after reducing N trajectories by "best" or "mean"."""
    if how == "mean":
        mean = nanmean if metric in SKIPS_NAN else np.mean
        return mean(values.video, axis=0), mean(values.frame, axis=0)
    if how != "best":
        raise ValueError(f"unknown trajectory reduction {how!r}; expected best or mean")
    video = values.video
    if metric in SKIPS_NAN:  # NaN (nothing scored) is never picked over a value
        video = np.where(np.isnan(video), -np.inf if HIGHER_IS_BETTER[metric] else np.inf, video)
    pick = (np.argmax if HIGHER_IS_BETTER[metric] else np.argmin)(video, axis=0)
    cols = np.arange(values.video.shape[1])
    return values.video[pick, cols], values.frame[pick, cols]


def over_videos(per_batch: Sequence[np.ndarray], reduce: str, skip_nan: bool = False) -> np.ndarray:
    """Reduce per-batch arrays [B, ...] over videos: mean of batch means, or mean over all videos
    (NaN values ignored with `skip_nan`)."""
    mean = nanmean if skip_nan else np.mean
    if reduce == "batch_means":
        return mean(np.stack([mean(x, axis=0) for x in per_batch]), axis=0)
    if reduce == "videos":
        return mean(np.concatenate(per_batch), axis=0)
    raise ValueError(f"unknown video reduction {reduce!r}; expected batch_means or videos")


def _keys(results: Sequence[BatchResult], mode: str) -> list[tuple[str, str]]:
    keys = {(mod, metric) for (m, mod, metric) in results[0].values if m == mode}
    keys |= {(mod, "fvd") for (m, mod) in results[0].fake if m == mode}
    keys |= {(mod, "fvd16") for (m, mod) in results[0].fake16 if m == mode}
    for i, r in enumerate(results[1:], start=1):
        other = (
            {(mod, metric) for (m, mod, metric) in r.values if m == mode}
            | {(mod, "fvd") for (m, mod) in r.fake if m == mode}
            | {(mod, "fvd16") for (m, mod) in r.fake16 if m == mode}
        )
        if other != keys:
            raise ValueError(f"batch {i} holds {sorted(other)} for mode {mode}, batch 0 holds {sorted(keys)}")
    return sorted(keys)


def summarise(
    results: Sequence[BatchResult],
    protocol: Protocol,
    *,
    dataset: str,
    condition: str,
    units: Mapping[str, str] | None = None,
    skipped: Mapping[str, str] | None = None,
    real16: Mapping[str, np.ndarray] | None = None,
) -> EvalReport:
    """Reduce the batches of one (dataset, condition) in one mode; `units` gives each field
    modality's unit (its L1 is in physical units); `real16` the real clips' I3D features of
    `fvd16` per modality (`syncvp.evaluation.fvd16`), reported with `fvd16_clips` (predicted
    clips) and `fvd16_real_clips`."""
    if not results:
        raise ValueError("summarise needs at least one batch")
    report = EvalReport(skipped=dict(skipped or {}))
    base = dict(dataset=dataset, condition=condition, mode=protocol.name)
    for modality, metric in _keys(results, protocol.name):
        if metric in SPREAD_PARTS or metric in ENSEMBLE_STORED:
            if metric != "spread_mse":
                _ensemble_rows(report, results, protocol, dict(base, modality=modality), metric, units or {})
            continue
        scale = protocol.scale(metric)
        unit = (units or {}).get(modality, "") if metric == "l1" else UNITS.get(metric, "")
        common = dict(base, modality=modality, metric=metric, scale=scale, units=unit)
        if metric == "fvd16":
            if real16 is None or modality not in real16:
                raise ValueError(f"fvd16 of {modality!r} needs the real clips' features (real16)")
            fake = np.concatenate([r.fake16[(protocol.name, modality)] for r in results])
            value = frechet_distance(fake, real16[modality], dtype=protocol.frechet_dtype)
            report.rows.append(Row(**common, trajectories="all", value=value))
            for name, n in (("fvd16_clips", len(fake)), ("fvd16_real_clips", len(real16[modality]))):
                report.rows.append(
                    Row(**dict(common, metric=name, scale=1.0, units=""), trajectories="all", value=float(n))
                )
            continue
        if metric == "fvd":
            acc = FeatureAccumulator()
            for i, r in enumerate(results):
                acc.add(i, real=r.real[modality], fake=r.fake[(protocol.name, modality)])
            report.rows.append(Row(**common, trajectories="all", value=scale * acc.distance(protocol.frechet_dtype)))
            continue
        for how in protocol.trajectories:
            picked = [over_trajectories(r.values[(protocol.name, modality, metric)], metric, how) for r in results]
            videos, frames = [v for v, _ in picked], [f for _, f in picked]
            skip = metric in SKIPS_NAN
            report.rows.append(
                Row(**common, trajectories=how, value=scale * float(over_videos(videos, protocol.reduce, skip)))
            )
            for r, v in zip(results, videos):
                report.videos += [
                    Row(**common, trajectories=how, value=scale * float(x), video=vid) for vid, x in zip(r.video_ids, v)
                ]
            curve = over_videos(frames, protocol.reduce, skip)
            report.curves += [
                Row(**common, trajectories=how, value=scale * float(x), frame=t + 1) for t, x in enumerate(curve)
            ]
    return report


def _ensemble_rows(
    report: EvalReport,
    results: Sequence[BatchResult],
    protocol: Protocol,
    base: dict,
    stored: str,
    units: Mapping[str, str],
) -> None:
    """Summary, per-video and per-frame rows of an ensemble metric (trajectories "all", unscaled)."""
    unit = units.get(base["modality"], IMAGE_UNITS)

    def reduced(key: str) -> tuple[list[np.ndarray], np.ndarray]:
        values = [r.values[(protocol.name, base["modality"], key)] for r in results]
        videos = [v.video[0] for v in values]
        return videos, over_videos([v.frame[0] for v in values], protocol.reduce)

    if stored in ENSEMBLE_STORED:
        videos, curve = reduced(stored)
        series = {ENSEMBLE_STORED[stored]: (videos, curve, float(np.mean(curve)))}
    else:
        (var_v, var_t), (mse_v, mse_t) = reduced("spread_var"), reduced("spread_mse")
        v_all, e_all = np.mean(var_t), np.mean(mse_t)
        series = {
            "spread": ([_ratio(v, e) for v, e in zip(var_v, mse_v)], _ratio(var_t, mse_t), _ratio(v_all, e_all)),
            "spread_std": ([np.sqrt(v) for v in var_v], np.sqrt(var_t), np.sqrt(v_all)),
            "rmse_ensemble_mean": ([np.sqrt(e) for e in mse_v], np.sqrt(mse_t), np.sqrt(e_all)),
        }
    for metric, (videos, curve, value) in series.items():
        common = dict(base, metric=metric, trajectories="all", units=unit if metric in PHYSICAL else "")
        report.rows.append(Row(**common, value=float(value)))
        for r, v in zip(results, videos):
            report.videos += [Row(**common, value=float(x), video=vid) for vid, x in zip(r.video_ids, v)]
        report.curves += [Row(**common, value=float(x), frame=t + 1) for t, x in enumerate(curve)]


def _ratio(var, mse):
    """sqrt(V) / sqrt(E): inf for a spread around an exact mean, nan when both are 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(np.asarray(var, dtype=np.float64)) / np.sqrt(np.asarray(mse, dtype=np.float64))
