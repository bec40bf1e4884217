"""Train a stage-1 or stage-2 diffusion unit and export it.

    job = diffusion_job.plan_single(unit, ...)   # or plan_joint(dataset, ...): fast checks
    train(job, progress=..., log=...)            # resumable training with EMA
    export(job)                                  # diffusion.pt / joint.pt (EMA), metrics, loss.png, probe
    curve_series(job)                            # the loss curves (before export), for the flow's DVCLive

Objectives (one `Update` for `fit`), per micro-batch of B windows:
- stage 1: keep_b ~ Bernoulli(cond_prob) per sample, c = keep * context latent,
  t ~ U{0..T-1}, eps ~ N(0, I), loss = mean_b mean_(C,L) (f(x_t, t, c) - target)^2 (docs/method.md §3.4).
- stage 2: one presence pattern per sample (`train_joint.patterns`), every missing modality's
  context zeroed, one t (and one eps under `joint.same_noise`) for all modalities, loss =
  sum_m L_m (docs/method.md §4.4); both targets are always the same future frames.

Work directory `<out>/work` (kept across DVC reruns): `train.pt` (raw weights, EMA, optimizer,
scheduler, noise generator, data position, loss history, fingerprint) and the latent cache. A
rerun resumes a checkpoint with the current fingerprint; `export` retires `train.pt` and leaves
`status.json`, so the next run of the stage trains from scratch.

Data-parallel under torchrun (`syncvp.training.distributed`, as the autoencoder stage): every
rank calls `train` (rank 0 in the Prefect flow, the others through the stage's worker); each
takes batch_size / processes windows per step from its shard of the window order and draws noise,
timesteps and dropout from a rank-salted generator; `fit` averages the gradients, so the ranks
keep identical weights. Rank 0 builds the latent cache first (the
others then read it), writes the checkpoints and exports.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

import torch
from torch import nn

from syncvp.diffusion.factory import build_schedule
from syncvp.diffusion.target import DiffusionTarget, measure_scale
from syncvp.io.atomic import write_json
from syncvp.io.digest import file_md5
from syncvp.models.autoencoder import load_autoencoder
from syncvp.models.diffusion_file import load_diffusion_model, save_diffusion_model, stage1_branch_states
from syncvp.models.ema import EMA
from syncvp.models.factory import build_joint_unet, build_unet
from syncvp.models.unet import count_parameters
from syncvp.models.unet_blocks import set_activation_checkpointing
from syncvp.progress import CURVE, ProgressEvent, ProgressFn, no_progress
from syncvp.runtime import configure_threads, resolve_device
from syncvp.seeding import torch_generator
from syncvp.training import distributed, optim
from syncvp.training.callbacks import Checkpoint, Evaluate, MetricHistory
from syncvp.training.context_probe import ContextProbe, context_summary, probe_timesteps
from syncvp.training.diffusion_job import DiffusionJob
from syncvp.training.diffusion_latents import Encoders, batch_stream, sample_latents
from syncvp.training.diffusion_objectives import UPDATE, joint_update, single_update
from syncvp.training.fastpath import prepare_model
from syncvp.training.loop import Update, fit
from syncvp.training.records import clear_finished, mark_finished, save_loss_plot, write_curve
from syncvp.training.seeded_init import build_seeded
from syncvp.training.state import TrainState, load_finished, resume

Log = Callable[[str], None]
_logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Pieces


def load_encoders(job: DiffusionJob, device: torch.device) -> Encoders:
    """The frozen context and future autoencoders of every modality; a file named twice (the future
    autoencoder also encoding the context, `context_encoder: future`) is loaded once."""
    loaded: dict = {}

    def load(path):
        if path not in loaded:
            loaded[path] = load_autoencoder(path, map_location=device)
        return loaded[path]

    return {m: job.autoencoders[m].map(load) for m in job.modalities}


def build_model(job: DiffusionJob, device: torch.device) -> nn.Module:
    """The UNet (stage 1) or joint model (stage 2) with weights drawn from the unit's seed; the
    joint model's branches then load the stage-1 (EMA) weights strictly when `init: stage1`, and
    the whole model loads the file it starts from when `init: checkpoint`."""
    if job.kind == "single":
        (m,) = job.modalities
        model = build_seeded(
            lambda: build_unet(job.unet, job.shapes[m].future, job.shapes[m].context), job.seed_for("init")
        )
    else:
        model = build_seeded(lambda: build_joint_unet(job.unet, job.joint, job.model_shapes), job.seed_for("init"))
        if job.stage1:
            files = {m: load_diffusion_model(p, kind="single") for m, p in job.stage1.items()}
            model.load_branches(stage1_branch_states(files))
    if job.init_file is not None:
        model.load_state_dict(load_diffusion_model(job.init_file, kind=job.kind).state_dict, strict=True)
    return model.to(device)


PROBE_WINDOWS = 8
SCALE_WINDOWS = 256


def diffusion_target(job: DiffusionJob, encoders: Encoders, device: torch.device) -> DiffusionTarget:
    """The diffusion space of the unit (`syncvp.diffusion.target`): with `diffusion.normalize`, the
    scale of each modality is measured on SCALE_WINDOWS training windows (stage 1) or taken from the
    model the unit starts from (the stage-1 model of a joint branch, or the `init: checkpoint`
    file), so the network keeps the space it learned in."""
    residual, scales, missing = job.diffusion.residual, {}, {}
    if job.diffusion.normalize:
        if job.init_file is not None or job.stage1:
            files = {m: job.init_file for m in job.modalities} if job.init_file is not None else job.stage1
            for m, path in files.items():
                saved = DiffusionTarget.from_dict(load_diffusion_model(path).meta.get("target"))
                scales[m], missing[m] = saved.scale(m), saved.missing_scale(m)
        else:
            context, future = sample_latents(job, encoders, device, SCALE_WINDOWS)
            for m in job.modalities:
                z = future[m].cpu()
                missing[m] = measure_scale(z, None, residual=False)
                scales[m] = measure_scale(z, context[m].cpu(), residual=True) if residual else missing[m]
    return DiffusionTarget(residual=residual, scales=scales, missing_scales=missing)


def context_probe(
    job: DiffusionJob, model: nn.Module, encoders: Encoders, device: torch.device, target: DiffusionTarget
) -> ContextProbe:
    """The fixed probe of context use (`syncvp.training.context_probe`) on PROBE_WINDOWS training windows."""
    context, future = sample_latents(job, encoders, device, PROBE_WINDOWS)
    return ContextProbe(
        model,
        joint=job.kind == "joint",
        context=context,
        future=future,
        schedule=build_schedule(job.diffusion).to(device),
        prediction=job.diffusion.prediction,
        seed=job.seed_for("probe"),
        target=target,
    )


class EmaCallback:
    """Folds the raw weights into the EMA after every optimizer step (at its cadence)."""

    def __init__(self, ema: EMA, model: nn.Module):
        self.ema, self.model = ema, model

    def __call__(self, state: TrainState, metrics: dict) -> None:
        self.ema.update(self.model, state.step)


class Timer:
    """Accumulates the training wall time (across resumes) in `state.extra["train_seconds"]`."""

    def __init__(self, state: TrainState):
        self.start, self.before = time.perf_counter(), float(state.extra.get("train_seconds", 0.0))

    def __call__(self, state: TrainState, metrics: dict) -> None:
        state.extra["train_seconds"] = self.before + time.perf_counter() - self.start


# --------------------------------------------------------------------------------------------
# Training


def make_state(
    job: DiffusionJob,
    encoders: Encoders,
    device: torch.device,
    progress: ProgressFn = no_progress,
    warn: Log = _logger.warning,
) -> tuple[TrainState, Update, EMA, DiffusionTarget]:
    """The fresh training state (model, EMA, AdamW + cosine, noise generator, batches), its update
    and the diffusion space (measured once the batches, and so the latent cache, exist)."""
    model = build_model(job, device)
    t = job.train
    ema = EMA(model, decay=t.ema.decay, every=t.ema.every, warmup=t.ema.warmup)
    set_activation_checkpointing(model, job.activation_checkpointing)
    prepare_model(model, channels_last=job.channels_last, compile=job.compile, warn=warn)  # after the EMA's copy
    opt = optim.adamw(model.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay)
    sched = optim.cosine_schedule(opt, total_steps=t.steps, min_ratio=t.lr_min_ratio, warmup_steps=t.warmup_steps)
    generator = torch_generator(
        job.seed, f"diffusion-{job.kind}", job.unit, "noise", *distributed.rank_salt(), device=str(device)
    )
    # the EMA rides with the streams: its own state dict, kept apart from the raw weights
    state = TrainState(
        models={UPDATE: model},
        optimizers={UPDATE: opt},
        schedulers={UPDATE: sched},
        generators={"noise": generator},
        streams={"train": batch_stream(job, encoders, device, progress, warn), "ema": ema},
    )
    target = diffusion_target(job, encoders, device)
    make = single_update if job.kind == "single" else joint_update
    return state, make(job, model, encoders, generator, target), ema, target


def train(
    job: DiffusionJob,
    *,
    progress: ProgressFn = no_progress,
    log: Log = _logger.info,
    warn: Log = _logger.warning,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) the unit to `train.steps` (or to `stop_at`, to simulate an interruption).
    `warn` receives the one-line warnings (a bad latent cache, encoded again).

    Under torchrun every rank calls this; it joins the process group and leaves it at the end.
    """
    configure_threads(job.threads)
    device = distributed.init(resolve_device(job.device))
    try:
        return _train(job, device, progress, log, warn, stop_at)
    finally:
        distributed.shutdown()


def _train(
    job: DiffusionJob, device: torch.device, progress: ProgressFn, log: Log, warn: Log, stop_at: int | None
) -> dict:
    if distributed.is_main():
        clear_finished(job.files.status)
        job.work_dir.mkdir(parents=True, exist_ok=True)
    encoders = load_encoders(job, device)
    state, update, ema, target = make_state(job, encoders, device, progress, warn)
    model = state.models[UPDATE]
    state.extra["target"] = target.as_dict()
    log(
        f"{job.unit}: {count_parameters(model) / 1e6:.3f} M parameters ({job.kind}, "
        f"init {job.train.init}{' ' + str(job.init_file) if job.init_file else ''}, "
        f"latents {job.train.latents}), future latent {job.shapes[job.modalities[0]].future}, on {device}"
        + (f", rank {distributed.rank()} of {distributed.world_size()}" if distributed.world_size() > 1 else "")
        + ("" if target.identity else f", diffusion space {target.as_dict()}")
    )
    resume(state, job.checkpoint_path, job.fingerprint, log)
    t = job.train
    callbacks = [
        EmaCallback(ema, model),
        Timer(state),
        MetricHistory(t.loss_curve_every, t.steps, name="train", progress=progress, task=job.unit, message=CURVE),
        MetricHistory(t.log_every, t.steps, name="log", progress=progress, task=job.unit),
        Evaluate(
            context_probe(job, model, encoders, device, target),
            t.log_every,
            t.steps,
            name="context",
            progress=progress,
            task=f"{job.unit} context probe",
        ),
        Checkpoint(job.checkpoint_path, job.fingerprint, t.checkpoint_every, t.steps),
    ]
    total = t.steps if stop_at is None else min(stop_at, t.steps)
    if total < t.steps:
        callbacks[-1] = Checkpoint(job.checkpoint_path, job.fingerprint, t.checkpoint_every, total)
    try:
        fit(
            state,
            [update],
            state.streams["train"],
            total_steps=total,
            device=device,
            grad_accum=t.grad_accum,
            amp=t.amp,
            callbacks=callbacks,
            progress=progress,
            task=job.unit,
        )
    finally:
        state.streams["train"].close()
    if not distributed.is_main():
        return {"unit": job.unit, "rank": distributed.rank()}
    return {"unit": job.unit, "steps": state.step, **loss_summary(job, state.extra.get("history", {}).get("train", []))}


# --------------------------------------------------------------------------------------------
# Export


def loss_columns(job: DiffusionJob) -> tuple[str, ...]:
    return ("loss",) + (tuple(f"loss_{m}" for m in job.modalities) if job.kind == "joint" else ())


def curve_rows(job: DiffusionJob, history: list[dict]) -> list[dict]:
    """Loss-curve rows {step, loss[, loss_<m>...]} from the training history."""
    return [
        {"step": r["step"], "loss": r[f"{UPDATE}/loss"], **{c: r[c] for c in loss_columns(job)[1:]}} for r in history
    ]


def loss_summary(job: DiffusionJob, history: list[dict]) -> dict[str, float]:
    """First and final smoothed losses: the mean of the curve points in the first / last tenth
    of training (at least one point), total and per modality (`loss_<m>_first/_final`)."""
    rows = curve_rows(job, history)
    if not rows:
        return {}
    span = max(1, math.ceil(len(rows) / 10))
    out = {}
    for c in loss_columns(job):
        out[f"{c}_first"] = sum(r[c] for r in rows[:span]) / span
        out[f"{c}_final"] = sum(r[c] for r in rows[-span:]) / span
    if job.kind == "single":  # the total is the modality's loss
        m = job.modalities[0]
        out[f"loss_{m}_first"], out[f"loss_{m}_final"] = out["loss_first"], out["loss_final"]
    return out


def curve_point(job: DiffusionJob, event: ProgressEvent) -> dict[str, float]:
    """The loss-curve values (loss[, loss_<m>...]) a `CURVE` progress event carries."""
    if event.message != CURVE or f"{UPDATE}/loss" not in event.metrics:
        return {}
    return {k: v for k, v in curve_rows(job, [{"step": event.done, **event.metrics}])[0].items() if k != "step"}


def curve_series(job: DiffusionJob) -> dict[str, list[tuple[int, float]]]:
    """{curve: [(step, value), ...]} of the finished run's loss curves, from its checkpoint (call
    before `export`, which retires it): what the flow layer writes as the unit's step-wise curves."""
    rows = curve_rows(job, finished_checkpoint(job)["extra"].get("history", {}).get("train", []))
    return {c: [(r["step"], r[c]) for r in rows] for c in loss_columns(job)}


def finished_checkpoint(job: DiffusionJob) -> dict:
    """The checkpoint of a run that reached `train.steps` with the current configuration."""
    stage = "train_single" if job.kind == "single" else "train_joint"
    return load_finished(
        job.checkpoint_path,
        job.fingerprint,
        job.train.steps,
        remedy=f"rerun `dvc repro {stage}@{job.unit}` to train it from scratch",
    )


def write_probe(job: DiffusionJob, rows: list[dict]) -> None:
    """`plots/context.tsv`: the context probe's x0 errors over training (with / without context).
    Hand-written, not DVCLive: one plot of several columns (every probe timestep, with and without
    context), which DVCLive's one-metric-per-file layout would split into separate plots."""
    if not rows:
        return
    write_curve(job.files.plot("context"), rows, ["step", *(k for k in rows[0] if k != "step")])


def export(job: DiffusionJob, *, log: Log = _logger.info) -> dict:
    """Write the EMA model (`diffusion.pt` or `joint.pt`), `metrics.json`, `loss.png` and
    `plots/context.tsv` to `job.out_dir`, then retire the work checkpoint (`work/status.json`)."""
    ckpt = finished_checkpoint(job)
    if job.kind == "single":
        shape = job.shapes[job.modalities[0]]
        model = build_unet(job.unet, shape.future, shape.context)
    else:
        model = build_joint_unet(job.unet, job.joint, job.model_shapes)
    model.load_state_dict(ckpt["extra"]["streams"]["ema"]["module"], strict=True)
    history = ckpt["extra"].get("history", {}).get("train", [])
    rows, columns = curve_rows(job, history), loss_columns(job)
    save_loss_plot(job.files.loss_plot, rows, columns, f"{job.unit} ({job.kind})")
    probe_rows = ckpt["extra"].get("history", {}).get("context", [])
    write_probe(job, probe_rows)
    seconds = float(ckpt["extra"].get("train_seconds", 0.0))
    # wall-clock figures change from run to run: kept out of the DVC-tracked metrics.json, so that a
    # bit-identical retrain leaves dvc.lock unchanged (timings.json is not a DVC output)
    timings = {
        "steps": job.train.steps,
        "train_seconds": seconds,
        "steps_per_s": job.train.steps / seconds if seconds > 0 else None,
    }
    metrics = {
        "steps": job.train.steps,
        "parameters": count_parameters(model),
        **loss_summary(job, history),
        **context_summary(probe_rows, probe_timesteps(job.diffusion.timesteps), job.modalities, job.kind == "joint"),
    }
    meta = {
        "unit": job.unit,
        "dataset": job.dataset,
        "step": ckpt["step"],
        "weights": "ema",
        "data_digest": job.data_digest,
        "fingerprint": job.fingerprint,
        "autoencoders": job.autoencoder_digests,
        "init": job.train.init if job.kind == "joint" or job.init_file is not None else None,
        "init_file": None if job.init_file is None else [str(job.init_file), file_md5(job.init_file)],
        "context_frames": job.context_frames,
        "future_frames": job.future_frames,
        "target": ckpt["extra"].get("target", DiffusionTarget().as_dict()),
    }
    save_diffusion_model(
        job.model_file,
        model,
        shapes=job.model_shapes,
        unet=job.unet,
        diffusion=job.diffusion,
        joint=job.joint,
        meta=meta,
    )
    write_json(job.files.metrics, metrics)
    write_json(job.files.timings, timings)
    mark_finished(job.files.status, [job.checkpoint_path], meta)
    log(
        f"{job.unit}: loss {metrics.get('loss_first', float('nan')):.4f} -> {metrics.get('loss_final', float('nan')):.4f}"
        f" (smoothed), {metrics['parameters'] / 1e6:.3f} M parameters -> {job.model_file}"
    )
    return metrics
