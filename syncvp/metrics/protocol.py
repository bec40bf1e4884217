"""The two reporting modes and the per-batch scoring of one test batch.

`paper` reproduces SyncVP's evaluation (docs/evaluation.md); `standard`
reports the same metrics without its couplings. They differ exactly here, and nowhere else:

| step | `paper` | `standard` |
| --- | --- | --- |
| predictions -> uint8 | truncation (`.type(torch.uint8)`) of the decoder output | rounding |
| rollout context (fed back) | the truncated frames | the rounded frames |
| gray modality, 3-channel network | 3 channels vs GT replicated | averaged to 1 channel |
| min-max before SSIM and L2 | whole batch tensor, pred and GT separately | none: fixed range x / 255 |
| over N trajectories | best of N (max SSIM/PSNR, min LPIPS/L2/L1) | best of N and mean over N |
| over videos | mean of per-batch means (a short last batch weighs as a full one) | mean over videos |
| scales | LPIPS x1000, L2 x100 | none (raw values) |
| Fréchet distance | float32, as SyncVP | float64 |

Shared by both: GT frames are uint8 (model-space GT is rounded back exactly); SSIM, LPIPS, L2
and PSNR score the predicted frames only; FVD compares GT context + predictions (all N
trajectories) with the GT videos, in 16-frame chunks stacked as samples; per video, SSIM and
LPIPS are means over frames, L2 is the RMSE over all values, PSNR uses the video's MSE (fixed
range, never min-max normalised: the paper only reports PSNR for autoencoders); L1 of fields
is in physical units over valid points. SSIM runs in float32 like SyncVP's (float64 differs
by ~1e-6); L2, PSNR and L1 in float64. The cross-modal `alignment` of a pair of image modalities
(`syncvp.metrics.alignment`) scores the quantised predictions of both, per mode, under the
modality key "<a>+<b>". `Protocol(scope="video")` (each video normalised by its
own min and max) is available for a per-video variant of the min-max.

Since the modes feed different frames back, `score_batch` takes either one set of trajectories
(scored by every mode) or one per `Protocol.quantisation` (`Predictor.rollouts`), each mode scoring
its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from syncvp.io.atomic import atomic_path
from syncvp.metrics import depth
from syncvp.metrics.alignment import alignment, pair_key
from syncvp.metrics.classes import ClassCoding, mean_iou, pixel_accuracy
from syncvp.metrics.ensemble import crps, spread_skill
from syncvp.metrics.flicker import flicker
from syncvp.metrics.fvd import STANDARD_CLIP, first_clip, video_features
from syncvp.metrics.images import Quantisation, Rounding, Scope, frames_of, ground_truth, normalise, quantise
from syncvp.metrics.lpips_alex import lpips_frames
from syncvp.metrics.plan import CLASS_METRICS, ENSEMBLE_METRICS, FIELD_METRICS, IMAGE_METRICS, MetricModels
from syncvp.metrics.ssim_psnr import psnr, ssim
from syncvp.metrics.weather import FieldSpec, masked_l1, to_physical


@dataclass(frozen=True)
class Protocol:
    """A reporting mode (see the module table).

    Attributes:
        name: "paper" or "standard" (any name for a custom variant).
        rounding: how float predictions become uint8.
        scope: min-max normalisation before SSIM and L2 ("batch", "video" or "range").
        reduce: "batch_means" (mean of per-batch means) or "videos" (mean over all videos).
        trajectories: reductions over the N trajectories: "best" and/or "mean".
        scales: (metric, factor) pairs applied to reported values.
        frechet_dtype: precision of the Fréchet distance.
        network_channels: score (and feed back) a gray modality at its network's 3 channels when its
            autoencoder is 3-channel (`gray_to_rgb`), against the GT replicated to 3 channels.
    """

    name: str
    rounding: Rounding
    scope: Scope
    reduce: Literal["batch_means", "videos"]
    trajectories: tuple[str, ...]
    scales: tuple[tuple[str, float], ...]
    frechet_dtype: torch.dtype
    network_channels: bool = False

    @property
    def quantisation(self) -> Quantisation:
        """How this mode's predictions become uint8 frames (and, in a rollout, the fed-back context)."""
        return Quantisation(self.rounding, self.network_channels)

    def __post_init__(self) -> None:
        checks = [
            ("name", self.name, bool(self.name) and "." not in self.name, "a non-empty name without '.'"),
            ("rounding", self.rounding, self.rounding in ("truncate", "round"), "truncate or round"),
            ("scope", self.scope, self.scope in ("batch", "video", "range"), "batch, video or range"),
            ("reduce", self.reduce, self.reduce in ("batch_means", "videos"), "batch_means or videos"),
            (
                "trajectories",
                self.trajectories,
                bool(self.trajectories) and set(self.trajectories) <= {"best", "mean"},
                "best and/or mean",
            ),
        ]
        for key, value, ok, want in checks:
            if not ok:
                raise ValueError(f"Protocol.{key}: expected {want}, got {value!r}")

    def scale(self, metric: str) -> float:
        return dict(self.scales).get(metric, 1.0)


PAPER = Protocol(
    name="paper",
    rounding="truncate",
    scope="batch",
    reduce="batch_means",
    trajectories=("best",),
    scales=(("lpips", 1000.0), ("l2", 100.0)),
    frechet_dtype=torch.float32,
    network_channels=True,
)
STANDARD = Protocol(
    name="standard",
    rounding="round",
    scope="range",
    reduce="videos",
    trajectories=("best", "mean"),
    scales=(),
    frechet_dtype=torch.float64,
)
PROTOCOLS = {p.name: p for p in (PAPER, STANDARD)}


def copy_last_frame(context: Tensor, frames: int) -> Tensor:
    """The baseline predictor: the last context frame repeated, [B, C, T_c, H, W] -> [B, C, frames, H, W].

    Pass uint8 context for image modalities so the copies are exact in every mode.
    """
    if context.ndim != 5 or context.shape[2] < 1 or frames < 1:
        raise ValueError(
            f"copy_last_frame needs [B, C, T, H, W] with T >= 1 and frames >= 1, got "
            f"{tuple(context.shape)} and {frames}"
        )
    return context[:, :, -1:].repeat(1, 1, frames, 1, 1)


@dataclass
class MetricValues:
    """One metric of one modality in one mode: per trajectory, video and predicted frame."""

    video: np.ndarray  # [N, B]
    frame: np.ndarray  # [N, B, T]


@dataclass
class BatchResult:
    """Everything one test batch contributes to an evaluation (cached per batch for resuming).

    Attributes:
        video_ids: the batch's videos, in order.
        values: (mode, modality, metric) -> per-trajectory/video/frame values (unscaled).
        real: modality -> I3D features of the GT videos [n_chunks * B, 400].
        fake: (mode, modality) -> I3D features of GT context + predictions, all trajectories.
        fake16: (mode, modality) -> I3D features of the first 16 frames of GT context +
            predictions, one clip per video and trajectory (`fvd16`; its real side is cached per
            dataset split, `syncvp.evaluation.fvd16`).
    """

    video_ids: tuple[str, ...]
    values: dict[tuple[str, str, str], MetricValues] = field(default_factory=dict)
    real: dict[str, np.ndarray] = field(default_factory=dict)
    fake: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    fake16: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)

    def save(self, path: Path | str) -> None:
        """Write one .npz atomically."""
        arrays = {"video_ids": np.array(self.video_ids, dtype=str)}
        for (mode, mod, metric), v in self.values.items():
            arrays[f"values.{mode}.{mod}.{metric}.video"] = v.video
            arrays[f"values.{mode}.{mod}.{metric}.frame"] = v.frame
        arrays.update({f"real.{mod}": f for mod, f in self.real.items()})
        arrays.update({f"fake.{mode}.{mod}": f for (mode, mod), f in self.fake.items()})
        arrays.update({f"fake16.{mode}.{mod}": f for (mode, mod), f in self.fake16.items()})
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    @classmethod
    def load(cls, path: Path | str) -> "BatchResult":
        with np.load(path) as data:
            out = cls(video_ids=tuple(str(v) for v in data["video_ids"]))
            for key in data.files:
                kind, *parts = key.split(".")
                if kind == "values" and parts[-1] == "video":
                    stem = ".".join(["values", *parts[:-1]])
                    out.values[tuple(parts[:-1])] = MetricValues(data[key], data[f"{stem}.frame"])
                elif kind == "real":
                    out.real[parts[0]] = data[key]
                elif kind == "fake":
                    out.fake[(parts[0], parts[1])] = data[key]
                elif kind == "fake16":
                    out.fake16[(parts[0], parts[1])] = data[key]
        return out


def _pair(video: Tensor, frame: Tensor) -> tuple[np.ndarray, np.ndarray]:
    return video.double().numpy(), frame.double().numpy()


def frame_metric(name: str, pred: Tensor, target: Tensor, scope: Scope) -> tuple[np.ndarray, np.ndarray]:
    """SSIM, L2 or PSNR of uint8 videos [B, C, T, H, W] -> (per video [B], per frame [B, T])."""
    b, t = pred.shape[0], pred.shape[2]
    if name == "ssim":
        s = ssim(frames_of(normalise(pred, scope)).float(), frames_of(normalise(target, scope)).float())
        s = s.double().reshape(b, t)
        return _pair(s.mean(dim=1), s)
    if name == "l2":
        return _pair(*depth.l2(pred, target, scope))
    if name == "psnr":
        p, g = pred.double() / 255.0, target.double() / 255.0
        return _pair(psnr(p.reshape(b, -1), g.reshape(b, -1)), psnr(frames_of(p), frames_of(g)).reshape(b, t))
    raise ValueError(f"{name!r} is not a frame metric (ssim, l2, psnr)")


def _stack(pairs: list[tuple[np.ndarray, np.ndarray]]) -> MetricValues:
    return MetricValues(np.stack([v for v, _ in pairs]), np.stack([f for _, f in pairs]))


def _model_scores(
    preds: list[Tensor], truth: Tensor, context: int, names: Sequence[str], models: MetricModels, i3d_batch: int
) -> dict[str, object]:
    """LPIPS values and FVD features of uint8 predictions (independent of the min-max scope)."""
    out: dict[str, object] = {}
    if "lpips" in names:
        future = truth[:, :, context:]
        out["lpips"] = _stack([_pair(s.mean(dim=1), s) for s in (lpips_frames(models.lpips, p, future) for p in preds)])
    if "fvd" in names:
        device = next(models.i3d.parameters()).device
        full = [torch.cat([truth[:, :, :context], p], dim=2) for p in preds]
        out["fvd"] = np.concatenate(
            [video_features(models.i3d, v, batch_size=i3d_batch, device=device).numpy() for v in full]
        )
    if "fvd16" in names:
        device = next(models.i3d.parameters()).device
        clips = [first_clip(torch.cat([truth[:, :, :context], p], dim=2)) for p in preds]
        out["fvd16"] = np.concatenate(
            [video_features(models.i3d, v, STANDARD_CLIP, batch_size=i3d_batch, device=device).numpy() for v in clips]
        )
    return out


def _widen(truth: Tensor, trajs: Sequence[Tensor]) -> Tensor:
    """GT [B, C, T, H, W] replicated along channels to the predictions' (3-channel predictions of a
    gray modality, `Protocol.network_channels`); unchanged when they agree."""
    c = trajs[0].shape[1]
    return truth.expand(-1, c, -1, -1, -1) if truth.shape[1] == 1 and c > 1 else truth


def _score_image(
    result: BatchResult,
    modality: str,
    truth: Tensor,
    trajs: Mapping[Quantisation, list[Tensor]],
    names: Sequence[str],
    context: int,
    protocols: Sequence[Protocol],
    models: MetricModels,
    i3d_batch: int,
    coding: ClassCoding | None = None,
) -> None:
    truth = ground_truth(truth)
    if "fvd" in names:
        device = next(models.i3d.parameters()).device
        result.real[modality] = video_features(models.i3d, truth, batch_size=i3d_batch, device=device).numpy()
    cache: dict[tuple, tuple[list[Tensor], dict]] = {}
    for protocol in protocols:
        own = trajs[protocol.quantisation]
        gt = _widen(truth, own)
        future = gt[:, :, context:]
        exact = all(p.dtype == torch.uint8 for p in own)
        key = (id(own), "exact" if exact else protocol.rounding)
        if key not in cache:
            preds = [quantise(p, protocol.rounding) for p in own]
            if coding is not None:  # a class map: each pixel decoded to its nearest class first
                preds = [snap_to_classes(p, coding) for p in preds]
            cache[key] = (preds, _model_scores(preds, gt, context, names, models, i3d_batch))
        preds, shared = cache[key]
        for name in names:
            if name in ENSEMBLE_METRICS:
                continue  # _score_ensemble
            if name == "fvd":
                result.fake[(protocol.name, modality)] = shared["fvd"]
            elif name == "fvd16":
                result.fake16[(protocol.name, modality)] = shared["fvd16"]
            elif name in CLASS_METRICS:
                result.values[(protocol.name, modality, name)] = _stack(
                    [class_metric(name, p, future, coding) for p in preds]
                )
            elif name == "lpips":
                result.values[(protocol.name, modality, name)] = shared["lpips"]
            else:
                result.values[(protocol.name, modality, name)] = _stack(
                    [frame_metric(name, p, future, protocol.scope) for p in preds]
                )


def snap_to_classes(pred: Tensor, coding: ClassCoding) -> Tensor:
    """uint8 predictions of a class map -> the gray level of each pixel's nearest class (channels
    averaged first, then replicated: a 3-channel network's gray output decodes to one class)."""
    ids = coding.to_ids(pred.double().mean(dim=1, keepdim=True).numpy())
    levels = torch.tensor(coding.levels, dtype=torch.float64).round().to(torch.uint8)
    return levels[torch.from_numpy(ids)].expand_as(pred).contiguous()


def class_metric(name: str, pred: Tensor, target: Tensor, coding: ClassCoding) -> tuple[np.ndarray, np.ndarray]:
    """Pixel accuracy or mean IoU of uint8 class maps [B, C, T, H, W] -> (per video [B], per frame
    [B, T]); a video's value pools all its pixels (not the mean of its frames' values)."""
    p = coding.to_ids(pred[:, 0].double().numpy())
    g = coding.to_ids(target[:, 0].double().numpy())
    score = pixel_accuracy if name == "accuracy" else lambda a, b: mean_iou(a, b, coding.num_classes)
    if name not in CLASS_METRICS:
        raise ValueError(f"{name!r} is not a class metric {CLASS_METRICS}")
    videos = np.array([score(p[i], g[i]) for i in range(p.shape[0])])
    frames = np.array([[score(p[i, t], g[i, t]) for t in range(p.shape[1])] for i in range(p.shape[0])])
    return videos, frames


def _check(
    modality: str,
    names: Sequence[str],
    truth: Tensor,
    trajs: list[Tensor],
    context: int,
    is_field: bool,
    models: MetricModels,
    is_classes: bool = False,
) -> None:
    allowed = FIELD_METRICS if is_field else IMAGE_METRICS + (CLASS_METRICS if is_classes else ())
    bad = [n for n in names if n not in allowed]
    if bad:
        kind = "field" if is_field else "class-map" if is_classes else "image"
        article = "an" if kind == "image" else "a"
        raise ValueError(
            f"{modality}: metrics {bad} do not apply to {article} {kind} modality (allowed: {list(allowed)})"
        )
    for name, model in (("fvd", models.i3d), ("fvd16", models.i3d), ("lpips", models.lpips)):
        if name in names and model is None:
            raise ValueError(f"{modality}: {name} requested but its network is not loaded (plan_metrics + load_models)")
    for i, p in enumerate(trajs):
        b, c, t, h, w = p.shape
        if truth.shape != (b, c, context + t, h, w):
            raise ValueError(
                f"{modality}: trajectory {i} is {tuple(p.shape)}, but GT {tuple(truth.shape)} "
                f"must be [B, C, {context} context + {t} predicted, H, W]"
            )


def _runs(
    predictions: Sequence[Mapping[str, Tensor]] | Mapping[Quantisation, Sequence[Mapping[str, Tensor]]],
    protocols: Sequence[Protocol],
) -> dict[Quantisation, Sequence[Mapping[str, Tensor]]]:
    """Each protocol's quantisation -> the trajectories it scores (one list shared by all, or its own)."""
    if isinstance(predictions, Mapping):
        missing = sorted({p.name for p in protocols if p.quantisation not in predictions})
        if missing:
            raise ValueError(f"score_batch: no predictions for the quantisation of mode(s) {missing}")
        runs = {p.quantisation: predictions[p.quantisation] for p in protocols}
    else:
        runs = {p.quantisation: predictions for p in protocols}
    if not all(runs.values()):
        raise ValueError("score_batch needs at least one trajectory")
    return runs


def _ensemble_values(per_frame: Tensor) -> MetricValues:
    """[B, T] per video and lead frame -> MetricValues of one "trajectory" (the ensemble)."""
    frame = per_frame.double().numpy()
    return MetricValues(frame.mean(axis=1)[None], frame[None])


def _score_ensemble(
    result: BatchResult,
    modality: str,
    truth: Tensor,
    trajs: Mapping[Quantisation, list[Tensor]],
    names: Sequence[str],
    context: int,
    protocols: Sequence[Protocol],
    spec: FieldSpec | None,
    valid: Tensor | None,
) -> None:
    """`spread` and `crps` of the N >= 2 trajectories as an ensemble, in physical units: uint8 levels
    (each mode's quantisation) for images, `spec.units` for fields over the valid points. Stored as one
    "trajectory": spread_var / spread_mse (`syncvp.metrics.ensemble.spread_skill`, combined into the
    ratio by `syncvp.metrics.report`), crps / crps_l1 (fair CRPS, L1 of the ensemble mean). Nothing is
    stored for a single trajectory (the references: no spread)."""
    wanted = [n for n in names if n in ENSEMBLE_METRICS]
    if not wanted or any(len(own) < 2 for own in trajs.values()):
        return
    mask = None if valid is None or spec is None else valid[:, :, context:]
    for protocol in protocols:
        own = trajs[protocol.quantisation]
        if spec is None:
            gt = _widen(ground_truth(truth), own)[:, :, context:].double()
            members = torch.stack([quantise(p, protocol.rounding).double() for p in own])
        else:
            gt = to_physical(truth[:, :, context:], spec)
            members = torch.stack([to_physical(p, spec) for p in own])
        key = (protocol.name, modality)
        if "spread" in wanted:
            var, mse = spread_skill(members, gt, mask)
            result.values[(*key, "spread_var")], result.values[(*key, "spread_mse")] = map(_ensemble_values, (var, mse))
        if "crps" in wanted:
            score, l1 = crps(members, gt, mask)
            result.values[(*key, "crps")], result.values[(*key, "crps_l1")] = map(_ensemble_values, (score, l1))


def _score_pairs(
    result: BatchResult,
    runs: Mapping[Quantisation, Sequence[Mapping[str, Tensor]]],
    pairs: Sequence[tuple[str, str]],
    protocols: Sequence[Protocol],
    names: Sequence[str] = ("alignment",),
    gt: Mapping[str, Tensor] | None = None,
    context_frames: int = 0,
) -> None:
    """The pair metrics of each (a, b) pair of image modalities, on each mode's uint8 predictions:
    `alignment` of the two predictions, `flicker` of b's prediction on the pixels a's GT future
    shows static (needs `gt`)."""
    for a, b in pairs:
        for protocol in protocols:
            trajs = runs[protocol.quantisation]
            key = pair_key(a, b)
            if "alignment" in names:
                values = [
                    alignment(quantise(p[a], protocol.rounding), quantise(p[b], protocol.rounding)) for p in trajs
                ]
                result.values[(protocol.name, key, "alignment")] = _stack(values)
            if "flicker" in names:
                if gt is None:
                    raise ValueError(
                        "flicker needs the GT videos (its static pixels come from the GT of the first modality)"
                    )
                still = quantise(gt[a][:, :, context_frames:], "round")
                values = [flicker(still, quantise(p[b], protocol.rounding)) for p in trajs]
                result.values[(protocol.name, key, "flicker")] = _stack(values)


def score_batch(
    gt: Mapping[str, Tensor],
    predictions: Sequence[Mapping[str, Tensor]] | Mapping[Quantisation, Sequence[Mapping[str, Tensor]]],
    *,
    context_frames: int,
    metrics: Mapping[str, Sequence[str]],
    protocols: Sequence[Protocol] = (PAPER, STANDARD),
    models: MetricModels | None = None,
    fields: Mapping[str, FieldSpec] | None = None,
    valid: Tensor | None = None,
    video_ids: Sequence[str] | None = None,
    i3d_batch: int = 8,
    pairs: Sequence[tuple[str, str]] = (),
    classes: Mapping[str, ClassCoding] | None = None,
    pair_metrics: Sequence[str] = ("alignment",),
) -> BatchResult:
    """Score one test batch in every mode of `protocols`.

    Args:
        gt: modality -> GT videos [B, C, context_frames + T, H, W]: uint8, or model space [-1, 1].
        predictions: N trajectories, each modality -> [B, C, T, H, W] (model space, or uint8), scored
            by every mode; or Quantisation -> such trajectories, each mode scoring those of its
            `Protocol.quantisation` (a rollout per fed-back quantisation, `Predictor.rollouts`).
            3-channel predictions of a 1-channel modality are scored against its GT replicated.
        metrics: modality -> metric names (available ones only, see `MetricPlan.select`); the ensemble
            metrics `spread` and `crps` are scored only when there are N >= 2 trajectories.
        fields: modalities that are physical fields (scored with L1), with their FieldSpec.
        valid: [B, 1, context_frames + T, H, W] mask of valid field points (None: all valid).
        video_ids: the videos' ids (default "0".."B-1").
        pairs: (a, b) image modalities scored with the `pair_metrics` (key "<a>+<b>"; may be
            given with empty `metrics`, e.g. to score GT frames passed as the prediction).
        classes: class-map modalities with their coding (`syncvp.metrics.classes`): their
            predictions are decoded to the nearest class level before every image metric, and
            they may take the class metrics `accuracy` and `miou`.
        pair_metrics: what the pairs are scored with: `alignment` (`syncvp.metrics.alignment`)
            and/or `flicker` (`syncvp.metrics.flicker`).
    """
    fields, models, classes = fields or {}, models or MetricModels(), classes or {}
    runs = _runs(predictions, protocols)
    batch = next(iter(gt.values())).shape[0]
    result = BatchResult(video_ids=tuple(video_ids) if video_ids is not None else tuple(map(str, range(batch))))
    if len(result.video_ids) != batch:
        raise ValueError(f"{len(result.video_ids)} video ids for a batch of {batch}")
    for modality, names in metrics.items():
        truth = gt[modality]
        lists: dict[int, list[Tensor]] = {}  # one list per distinct run: modes sharing it share scores
        trajs = {q: lists.setdefault(id(run), [p[modality] for p in run]) for q, run in runs.items()}
        for own in trajs.values():
            _check(
                modality,
                names,
                _widen(truth, own),
                own,
                context_frames,
                modality in fields,
                models,
                modality in classes,
            )
        spec = fields.get(modality)
        _score_ensemble(result, modality, truth, trajs, names, context_frames, protocols, spec, valid)
        if modality not in fields:
            coding = classes.get(modality)
            _score_image(result, modality, truth, trajs, names, context_frames, protocols, models, i3d_batch, coding)
            continue
        if "l1" in names:
            mask = None if valid is None else valid[:, :, context_frames:]
            future = truth[:, :, context_frames:]
            values = {
                q: _stack([_pair(*masked_l1(p, future, mask, fields[modality])) for p in own])
                for q, own in trajs.items()
            }
            for protocol in protocols:  # fields are not quantised or min-max normalised
                result.values[(protocol.name, modality, "l1")] = values[protocol.quantisation]
    _score_pairs(result, runs, pairs, protocols, pair_metrics, gt, context_frames)
    return result
