"""One test batch of one setting: read clips, perturb the context, roll out (or build a reference
prediction, `syncvp.evaluation.references`), score; one file out.

A batch of videos [start, stop) is read from the store with the clip starting at frame 0 (the
paper's protocol): `context_frames` observed frames followed by `rollout_frames` GT frames.
The prediction of setting s for batch k uses the sampling stream (seed, "rollout", k) and the
context noise the stream (seed, "context-noise", k): every setting of a batch draws the same
numbers (common random numbers, so settings differ by what they change and not by luck), and a
batch's result does not depend on which other batches ran, or in which order (resumable). The
stage-1 references use the streams (seed, "rollout", k, modality) of a stage-1 evaluation.

Context noise of sigma (0-255 units) on model-space frames x in [-1, 1]:

    x' = clamp(x + (sigma / 127.5) * n, -1, 1),   n ~ N(0, 1) per value,

so sigma = 0 leaves the context bit-identical (the frames are not re-quantised to uint8).
"""

from __future__ import annotations

import dataclasses
import logging
from contextvars import ContextVar
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from syncvp.data.dataset import ClipDataset
from syncvp.evaluation import references
from syncvp.evaluation.plan import AUTOENCODER, BASELINE, FLOW, GROUND_TRUTH, SINGLE, EvaluationPlan, Setting
from syncvp.evaluation.uncertainty import SPREAD_KEY, spread_maps
from syncvp.io.atomic import atomic_path
from syncvp.io.netcdf import NETCDF_LOCK
from syncvp.metrics.classes import ClassCoding
from syncvp.metrics.images import Quantisation
from syncvp.metrics.plan import PAIR_METRICS, MetricModels, load_models
from syncvp.metrics.protocol import PROTOCOLS, BatchResult, Protocol, score_batch
from syncvp.metrics.weather import FieldSpec
from syncvp.prediction import Predictor, load_predictor
from syncvp.prediction.load import completion_options
from syncvp.progress import ProgressFn, no_progress
from syncvp.seeding import torch_generator

_LOADED: dict[tuple[str, str], tuple[dict[str, Predictor], MetricModels]] = {}
# where the compile guard's warning goes: the batch running now (`run_batch(warn=...)`): the
# predictors are loaded once per plan and may compile again at a later batch (a shorter last batch)
_WARN: ContextVar[Callable[[str], None]] = ContextVar("warn", default=logging.getLogger(__name__).warning)


def _warn(message: str) -> None:
    _WARN.get()(message)


def protocols(plan: EvaluationPlan) -> tuple[Protocol, ...]:
    """The configured reporting modes with the configured trajectory reductions."""
    how = plan.evaluate.trajectory_reductions
    return tuple(dataclasses.replace(PROTOCOLS[name], trajectories=how) for name in plan.evaluate.protocols)


def networks(plan: EvaluationPlan) -> tuple[dict[str, Predictor], MetricModels]:
    """Predictors ("joint", and/or one per modality for stage-1 models: the model or the single
    baseline) and metric networks, loaded once per process and plan. With `plan.compile` the
    predictors' diffusion models are compiled, with `plan.cuda_graphs` their denoiser is replayed
    from a CUDA graph per chunk (`load_predictor`; the warning of a failed compilation or capture
    goes to the running batch's `warn`)."""
    key = (plan.fingerprint, plan.device)
    if key not in _LOADED:
        images = [m for m in plan.modalities if plan.kinds[m] == "image"]
        predictors = {}
        for name, path in {**plan.model_files, **plan.single_files}.items():
            mods = plan.modalities if name == "joint" else (name,)
            predictors[name] = load_predictor(
                path,
                {m: plan.autoencoders[m] for m in mods},
                plan.sampling,
                device=plan.device,
                quantize=[m for m in mods if m in images],
                compile=plan.compile,
                channels_last=plan.channels_last,
                cuda_graphs=plan.cuda_graphs,
                warn=_warn,
            )
        _LOADED.clear()  # one plan at a time: free the previous networks
        _LOADED[key] = (predictors, load_models(plan.metric_plan, plan.device))
    return _LOADED[key]


def video_ids(store: Path, start: int, stop: int) -> tuple[str, ...]:
    """The store's `video_id` of videos [start, stop), or their indices when it has none."""
    with NETCDF_LOCK, xr.open_dataset(store, engine="netcdf4") as ds:
        if "video_id" in ds.variables:
            return tuple(str(v) for v in ds["video_id"].values[start:stop])
    return tuple(str(i) for i in range(start, stop))


def load_clips(plan: EvaluationPlan, start: int, stop: int) -> tuple[dict[str, Tensor], Tensor | None]:
    """GT clips {m: [B, C, context + rollout, H, W]} in model space and the valid mask [B, 1, T, H, W] (or None)."""
    data = ClipDataset(plan.store, plan.modalities, plan.frames, seed=0, window="first")
    items = [data[i] for i in range(start, stop)]
    clips = {m: torch.stack([it[m] for it in items]) for m in plan.modalities}
    valid = torch.stack([it["valid"] for it in items]) if "valid" in items[0] else None
    data.reader.close()
    return clips, valid


def add_context_noise(x: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    """clamp(x + sigma / 127.5 * N(0, 1), -1, 1) for model-space frames [B, C, T, H, W]."""
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device)
    return (x + (sigma / 127.5) * noise.to(x.device)).clamp(-1.0, 1.0)


def quantisations(plan: EvaluationPlan) -> tuple[Quantisation, ...]:
    """The fed-back quantisations of the configured modes (one rollout each, `Predictor.rollouts`)."""
    return tuple(dict.fromkeys(p.quantisation for p in protocols(plan)))


def _predict(
    plan: EvaluationPlan, setting: Setting, context: dict[str, Tensor], index: int, progress: ProgressFn
) -> dict[Quantisation, dict[str, Tensor]]:
    """{q: {m: [B, N, C, rollout, H, W]}} on the CPU, one rollout per fed-back quantisation."""
    predictors, _ = networks(plan)
    n, frames, seed = plan.evaluate.trajectories, plan.config.rollout_frames, plan.evaluate.seed
    qs = quantisations(plan)
    if "joint" in plan.model_files:
        gen = torch_generator(seed, "rollout", index, device=plan.device)
        out = predictors["joint"].rollouts(
            context, frames, generator=gen, quantisations=qs, present=setting.present, trajectories=n, progress=progress
        )
    else:  # stage-1 models: each modality from its own context only
        out = {q: {} for q in qs}
        for m in plan.model_files:
            predictor = predictors[m]
            gen = torch_generator(seed, "rollout", index, m, device=plan.device)
            runs = predictor.rollouts(
                {m: context[m]}, frames, generator=gen, quantisations=qs, trajectories=n, progress=progress
            )
            for q in qs:
                out[q].update(runs[q])
    return {q: {m: v.float().cpu() for m, v in run.items()} for q, run in out.items()}


def _complete(
    plan: EvaluationPlan, setting: Setting, clips: dict[str, Tensor], index: int, progress: ProgressFn
) -> dict[Quantisation, dict[str, Tensor]]:
    """Modality completion of batch `index`: {q: {m: [B, N, C, rollout, H, W]}}, the given modalities'
    GT future repeated N times next to the completed others (scored on the future frames). The
    completed frames are fed back rounded, so every fed-back quantisation shares one run (widened
    to the network's channels where a mode asks for them)."""
    predictors, _ = networks(plan)
    predictor = predictors["joint"]
    n, tc, sampling = plan.evaluate.trajectories, plan.config.context_frames, plan.sampling
    gen = torch_generator(plan.evaluate.seed, "rollout", index, device=plan.device)
    done = predictor.complete(
        {m: clips[m] for m in setting.given},
        generator=gen,
        trajectories=n,
        progress=progress,
        **completion_options(predictor, sampling),
    )
    run = {m: v[:, :, :, tc:].float().cpu() for m, v in done.items()}
    for m in setting.given:
        run[m] = clips[m][:, None, :, tc:].expand(-1, n, -1, -1, -1, -1).float()
    out = {}
    for q in quantisations(plan):
        wide = {}
        for m, v in run.items():
            ae = predictor.future_autoencoders[m]
            c = ae.spec.net_channels if q.network_channels else ae.spec.channels
            wide[m] = v.expand(-1, -1, c, -1, -1, -1) if v.shape[2] == 1 and c > 1 else v
        out[q] = wide
    return out


def _split(plan: EvaluationPlan, pred: dict[str, Tensor]) -> list[dict[str, Tensor]]:
    """{m: [B, N, ...]} -> N trajectories {m: [B, ...]}."""
    return [{m: pred[m][:, k] for m in plan.modalities} for k in range(plan.evaluate.trajectories)]


def _score(
    plan: EvaluationPlan,
    clips: dict[str, Tensor],
    valid: Tensor | None,
    trajectories: list[dict] | dict[Quantisation, list[dict]],
    ids: tuple[str, ...],
    pairs_only: bool = False,
    given: tuple[str, ...] = (),
) -> BatchResult:
    _, models = networks(plan)
    fields = {m: FieldSpec(lo, hi, units) for m, (lo, hi, units) in plan.fields.items()}
    metrics = {} if pairs_only else {m: plan.metrics_for(m) for m in plan.modalities if m not in given}
    return score_batch(
        clips,
        trajectories,
        context_frames=plan.config.context_frames,
        metrics=metrics,
        protocols=protocols(plan),
        models=models,
        fields=fields,
        valid=valid,
        video_ids=ids,
        pairs=plan.pairs,
        classes={m: ClassCoding.gray(names) for m, names in plan.classes.items()},
        pair_metrics=[m for m in PAIR_METRICS if m in plan.metric_plan.available],
    )


def trajectories(
    plan: EvaluationPlan, setting: Setting, clips: dict[str, Tensor], index: int, progress: ProgressFn = no_progress
) -> list[dict[str, Tensor]] | dict[Quantisation, list[dict[str, Tensor]]]:
    """The setting's predictions of batch `index`: N trajectories {m: [B, C, rollout_frames, H, W]}
    (one for copy_last, flow and ground_truth), or for model rollouts and the autoencoder ceiling
    such trajectories per fed-back quantisation (`quantisations`; `score_batch` scores each mode on its own)."""
    if setting.source == BASELINE:
        return [references.copy_last(plan, clips)]
    if setting.source == FLOW:
        return [references.flow_extrapolation(plan, clips)]
    if setting.source == GROUND_TRUTH:
        return [references.ground_truth_future(plan, clips)]
    predictors, _ = networks(plan)
    if setting.source == AUTOENCODER:
        future = {
            m: next(p.future_autoencoders[m] for p in predictors.values() if m in p.future_autoencoders)
            for m in plan.modalities
        }
        return {q: [run] for q, run in references.autoencoder_ceiling(plan, future, clips, quantisations(plan)).items()}
    tc = plan.config.context_frames
    context = {m: clips[m][:, :, :tc] for m in setting.present}
    if setting.source == SINGLE:
        runs = references.single_predictions(plan, predictors, setting, context, index, quantisations(plan), progress)
    elif setting.given:
        runs = _complete(plan, setting, clips, index, progress)
    else:
        if setting.noise is not None:
            m, sigma = setting.noise
            context[m] = add_context_noise(
                context[m], sigma, torch_generator(plan.evaluate.seed, "context-noise", index)
            )
        runs = _predict(plan, setting, context, index, progress)
    return {q: _split(plan, run) for q, run in runs.items()}


def run_batch(
    plan: EvaluationPlan,
    setting: Setting,
    index: int,
    progress: ProgressFn = no_progress,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Evaluate batch `index` of `setting` (the model's or a reference); writes its BatchResult (and
    sample predictions, except for ground_truth) atomically. `warn` receives the warning of a
    compiled denoiser that falls back to eager (`plan.compile`) or of a failed CUDA graph capture
    (`plan.cuda_graphs`; None: this module's logger)."""
    if warn is None:
        return _run_batch(plan, setting, index, progress)
    token = _WARN.set(warn)
    try:
        return _run_batch(plan, setting, index, progress)
    finally:
        _WARN.reset(token)


def _run_batch(plan: EvaluationPlan, setting: Setting, index: int, progress: ProgressFn) -> Path:
    start, stop = plan.batches[index]
    clips, valid = load_clips(plan, start, stop)
    trajs = trajectories(plan, setting, clips, index, progress)
    pairs_only = setting.source == GROUND_TRUTH
    ids = video_ids(plan.store, start, stop)
    result = _score(plan, clips, valid, trajs, ids, pairs_only=pairs_only, given=setting.given)
    if not pairs_only:
        _save_samples(plan, setting.label, index, _sample_run(trajs), valid)
    result.save(plan.batch_file(setting.label, index))
    return plan.batch_file(setting.label, index)


def _sample_run(trajs: list[dict] | dict[Quantisation, list[dict]]) -> list[dict]:
    """The trajectories the sample grid shows: the modality-channel run (rounded if there is one)."""
    if not isinstance(trajs, dict):
        return trajs
    ranked = sorted(trajs, key=lambda q: (q.network_channels, q.rounding != "round"))
    return trajs[ranked[0]]


def run_baseline(plan: EvaluationPlan, index: int) -> Path:
    """The copy-last-context-frame baseline on batch `index` (GT context, no noise)."""
    return run_batch(plan, plan.setting(BASELINE), index)


def _save_samples(
    plan: EvaluationPlan, label: str, index: int, run: list[dict[str, Tensor]], valid: Tensor | None
) -> None:
    """The first trajectory of the batch's videos among the first `evaluate.samples` (model space), and
    with N >= 2 trajectories their spread maps (`syncvp.evaluation.uncertainty.spread_maps`, keys
    `spread.<m>`)."""
    start, stop = plan.batches[index]
    keep = max(0, min(stop, plan.evaluate.samples) - start)
    path = plan.sample_file(label, index)
    if keep == 0:
        return
    arrays = {
        m: (v[:keep].float() / 127.5 - 1 if v.dtype == torch.uint8 else v[:keep].float()).numpy()
        for m, v in run[0].items()
    }
    fields = {m: FieldSpec(lo, hi, units) for m, (lo, hi, units) in plan.fields.items()}
    mask = None if valid is None else valid[:keep, :, plan.config.context_frames :]
    spread = spread_maps([{m: v[:keep] for m, v in t.items()} for t in run], fields, mask)
    arrays.update({f"{SPREAD_KEY}{m}": v for m, v in spread.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, start=np.array(start), **arrays)
