"""Train one autoencoder unit and export it.

    job = autoencoder_job.plan(unit, ...)   # fast checks, weights resolved
    train(job, progress=..., log=...)       # reconstruction, then the optional GAN fine-tune
    export(job, out_dir)                    # frozen autoencoder, metrics, PNG grid
    curve_series(job)                       # the step-wise curves (before export), for the flow's DVCLive

Work directory `<models>/<unit>/work` (kept across DVC reruns): `reconstruct.pt` and
`finetune_gan.pt` hold everything needed to resume (models, optimizers, schedulers, step, RNG
states, data-stream position, metric history) and the fingerprint of the configuration that made
them. A rerun resumes a checkpoint with the current fingerprint and trains from scratch (saying
so) otherwise. `export` deletes them once the outputs are written and leaves `status.json`, so a
finished run is never resumed: the next run of the stage trains from scratch.

Data-parallel under torchrun (`syncvp.training.distributed`): every rank calls `train` (the stage's
rank 0 inside its Prefect flow, the others through the stage's worker); each loads
batch_size / processes clips per step, draws its random frames from a rank-salted generator, and
`fit` averages the gradients. Rank 0 alone evaluates, writes checkpoints and exports; all ranks
resume from the same checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable

import torch

from syncvp.config.layout import AutoencoderFiles
from syncvp.data.dataset import ClipDataset
from syncvp.data.store import read_info
from syncvp.io.atomic import write_json
from syncvp.io.digest import file_md5
from syncvp.models.autoencoder import TriplaneAutoencoder, count_parameters, load_autoencoder, save_autoencoder
from syncvp.progress import CURVE, HELD_OUT, ProgressEvent, ProgressFn, no_progress
from syncvp.runtime import configure_threads, resolve_device
from syncvp.seeding import torch_generator
from syncvp.training import distributed, optim
from syncvp.training.autoencoder import AutoencoderObjective, build_discriminators
from syncvp.training.autoencoder_job import PHASES, AutoencoderJob
from syncvp.training.callbacks import Checkpoint, Evaluate, MetricHistory
from syncvp.training.data import BatchStream
from syncvp.training.fastpath import pin_memory, prepare_model
from syncvp.training.loop import fit
from syncvp.training.perceptual import load_lpips_vgg
from syncvp.training.reconstruction import (
    held_out_clips,
    network_view,
    paper_reconstruction_metrics,
    reconstruct_all,
    reconstruction_grid,
    reconstruction_metrics,
)
from syncvp.training.records import clear_finished, mark_finished
from syncvp.training.seeded_init import build_seeded
from syncvp.training.state import TrainState, load_finished, resume
from syncvp.viz import save_png

Log = Callable[[str], None]
_logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Pieces


def build_model(job: AutoencoderJob, device: torch.device) -> TriplaneAutoencoder:
    """The autoencoder, its initial weights drawn from the unit's seed (the same on every rank), or
    with `init: checkpoint` those of the file it starts from (checked when the job was planned)."""
    model = build_seeded(lambda: TriplaneAutoencoder(job.spec), job.seed_for("init"))
    if job.init_file is not None:
        model.load_state_dict(load_autoencoder(job.init_file).state_dict(), strict=True)
    model = model.to(device)
    return prepare_model(model, channels_last=job.channels_last, compile=job.compile)


def batch_stream(job: AutoencoderJob, phase: str, device: torch.device) -> BatchStream:
    """This rank's share (batch_size / world clips per step) of the phase's clip order."""
    data = ClipDataset(job.train_store, [job.modality], job.spec.frames, seed=job.seed_for(phase, "windows"))
    size = distributed.per_rank_batch(job.train.batch_size, key="train_autoencoder.batch_size")
    return BatchStream(
        data,
        size,
        seed=job.seed_for(phase, "order"),
        num_workers=job.train.num_workers,
        rank=distributed.rank(),
        world=distributed.world_size(),
        pin_memory=pin_memory(device),
    )


def frame_generator(job: AutoencoderJob, phase: str) -> torch.Generator:
    """The random-frame stream of a phase, salted with the rank when distributed."""
    return torch_generator(job.seed, "autoencoder", job.unit, phase, "frames", *distributed.rank_salt())


def optimizer(parameters, job: AutoencoderJob, *, lr: float, total_steps: int, warmup_steps: int = 0):
    opt = optim.adamw(parameters, lr=lr, betas=job.train.betas, weight_decay=job.train.weight_decay)
    return opt, optim.cosine_schedule(
        opt, total_steps=total_steps, min_ratio=job.train.lr_min_ratio, warmup_steps=warmup_steps
    )


def evaluator(model: TriplaneAutoencoder, clips: torch.Tensor, device: torch.device, batch_size: int):
    """() -> held-out PSNR / SSIM / L1 of `model` (eval mode during the call)."""

    def evaluate() -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            return reconstruction_metrics(clips, reconstruct_all(lambda x: model(x)[0], clips, device, batch_size))
        finally:
            model.train(was_training)

    return evaluate


def overall_progress(job: AutoencoderJob, phase: str, progress: ProgressFn) -> ProgressFn:
    """Report a phase's steps on the unit's overall step axis (reconstruction, then fine-tune)."""
    offset = 0 if phase == PHASES[0] else job.phase_steps(PHASES[0])
    total = sum(job.phase_steps(p) for p in PHASES[: PHASES.index(job.final_phase) + 1])
    return lambda event: progress(dataclasses.replace(event, done=event.done + offset, total=total))


# --------------------------------------------------------------------------------------------
# Phases


def run_phase(
    job: AutoencoderJob,
    phase: str,
    state: TrainState,
    objective: AutoencoderObjective,
    evaluate: Callable[[], dict],
    device: torch.device,
    progress: ProgressFn,
    log: Log,
) -> TrainState:
    """Resume if possible, then `fit` the phase to its step count with eval/checkpoint callbacks."""
    t, total, path = job.train, job.phase_steps(phase), job.checkpoint_path(phase)
    fingerprint = job.fingerprint(phase)
    resume(state, path, fingerprint, log)
    task = f"{job.unit} {phase}"
    progress = overall_progress(job, phase, progress)
    ev = Evaluate(evaluate, t.eval_every, total, progress=progress, task=f"{task} held-out")
    main = distributed.is_main()
    if state.step == 0 and main:
        ev.record(state)
    callbacks = [
        MetricHistory(t.log_every, total, progress=progress, task=task, message=CURVE),
        *([ev] if main else []),
        Checkpoint(path, fingerprint, t.checkpoint_every, total),
    ]
    try:
        return fit(
            state,
            objective.updates(),
            state.streams["train"],
            total_steps=total,
            device=device,
            grad_accum=t.grad_accum,
            amp=t.amp,
            callbacks=callbacks,
            progress=progress,
            task=task,
        )
    finally:
        state.streams["train"].close()


def reconstruct_phase(job, model, perceptual, evaluate, device, progress, log) -> TrainState:
    phase = PHASES[0]
    opt, sched = optimizer(
        model.parameters(), job, lr=job.train.lr, total_steps=job.train.steps, warmup_steps=job.train.warmup_steps
    )
    frames = frame_generator(job, phase)
    state = TrainState(
        models={"autoencoder": model},
        optimizers={"autoencoder": opt},
        schedulers={"autoencoder": sched},
        generators={"frames": frames},
        streams={"train": batch_stream(job, phase, device)},
    )
    objective = AutoencoderObjective(
        model,
        job.modality,
        frame_generator=frames,
        pixel_weight=job.train.pixel_weight,
        perceptual_weight=job.train.perceptual_weight,
        perceptual=perceptual,
    )
    return run_phase(job, phase, state, objective, evaluate, device, progress, log)


def gan_phase(job, model, perceptual, evaluate, device, progress, log) -> TrainState:
    """Fine-tune from the reconstruction weights with fresh optimizers at `gan.lr`."""
    phase, gan = PHASES[1], job.train.gan
    discs = build_seeded(
        lambda: build_discriminators(job.spec.channels, gan.ndf, gan.disc_layers), job.seed_for(phase, "init")
    ).to(device)
    opt_g, sched_g = optimizer(model.parameters(), job, lr=gan.lr, total_steps=gan.steps)
    opt_d, sched_d = optimizer(discs.parameters(), job, lr=gan.lr, total_steps=max(gan.steps - gan.disc_start, 1))
    frames = frame_generator(job, phase)
    state = TrainState(
        models={"autoencoder": model, "discriminators": discs},
        optimizers={"autoencoder": opt_g, "discriminator": opt_d},
        schedulers={"autoencoder": sched_g, "discriminator": sched_d},
        generators={"frames": frames},
        streams={"train": batch_stream(job, phase, device)},
    )
    objective = AutoencoderObjective(
        model,
        job.modality,
        frame_generator=frames,
        pixel_weight=job.train.pixel_weight,
        perceptual_weight=job.train.perceptual_weight,
        perceptual=perceptual,
        discriminators=discs,
        disc_start=gan.disc_start,
        gan_weight=gan.gan_weight,
        feature_weight=gan.feature_weight,
        max_disc_grad_norm=gan.disc_grad_clip,
    )
    return run_phase(job, phase, state, objective, evaluate, device, progress, log)


def train(job: AutoencoderJob, *, progress: ProgressFn = no_progress, log: Log = _logger.info) -> dict:
    """Train (or resume) both phases; returns the last held-out metrics and step counts (on rank 0;
    other ranks of a distributed run return only the unit and their rank).

    Under torchrun every rank calls this; it joins the process group and leaves it at the end.
    """
    configure_threads(job.threads)
    device = distributed.init(resolve_device(job.device))
    try:
        return _train(job, device, progress, log)
    finally:
        distributed.shutdown()


def _train(job: AutoencoderJob, device: torch.device, progress: ProgressFn, log: Log) -> dict:
    if distributed.is_main():
        clear_finished(job.files.status)
    perceptual = None
    if job.perceptual_weights is not None:
        perceptual = load_lpips_vgg(job.perceptual_weights).to(device)
    elif job.train.perceptual_weight > 0:
        log("perceptual (LPIPS-VGG16) loss is off: params.yaml weights.lpips_vgg16 is null")
    model = build_model(job, device)
    log(
        f"{job.unit}: {count_parameters(model) / 1e6:.3f} M parameters, latent {job.spec.config.latent_channels} x "
        f"{job.spec.latent_shape.length}, {job.spec.frames} frames of {job.spec.resolution}, on {device}"
        + (f", rank {distributed.rank()} of {distributed.world_size()}" if distributed.world_size() > 1 else "")
        + (f", starting from {job.init_file}" if job.init_file else "")
    )
    clips = held_out_clips(job.val_store, job.modality, job.spec.frames, job.train.eval_clips, job.seed_for("eval"))
    evaluate = evaluator(model, clips, device, job.train.batch_size)
    state = reconstruct_phase(job, model, perceptual, evaluate, device, progress, log)
    if job.train.gan.enabled:
        state = gan_phase(job, model, perceptual, evaluate, device, progress, log)
    if not distributed.is_main():
        return {"unit": job.unit, "rank": distributed.rank()}
    last = state.extra["history"]["eval"][-1]
    return {
        "unit": job.unit,
        "steps": job.train.steps,
        "gan_steps": job.train.gan.steps if job.train.gan.enabled else 0,
        **{k: v for k, v in last.items() if k != "step"},
    }


# --------------------------------------------------------------------------------------------
# Export


def finished_checkpoint(job: AutoencoderJob, phase: str) -> dict:
    """The checkpoint of a phase that ran to its last step with the current configuration."""
    return load_finished(
        job.checkpoint_path(phase),
        job.fingerprint(phase),
        job.phase_steps(phase),
        remedy=f"rerun `dvc repro train_autoencoder@{job.unit}` to train it from scratch",
        what=f"{phase} phase",
    )


def curves(job: AutoencoderJob) -> dict[str, list[dict]]:
    """Held-out ("eval") and training ("train") histories of all phases on one step axis."""
    out: dict[str, list[dict]] = {"eval": [], "train": []}
    offset = 0
    for phase in PHASES[: PHASES.index(job.final_phase) + 1]:
        history = finished_checkpoint(job, phase)["extra"].get("history", {})
        for name, rows in out.items():
            rows += [
                {**r, "step": r["step"] + offset} for r in history.get(name, []) if not (offset and r["step"] == 0)
            ]
        offset += job.phase_steps(phase)
    return out


# the plotted curves: {curve name: the history ("eval" or "train") and the key it is read from}
CURVES = {
    "psnr": ("eval", "psnr"),
    "ssim": ("eval", "ssim"),
    "loss": ("train", "autoencoder/loss"),
    "l1": ("train", "l1"),
}


def curve_point(event: ProgressEvent) -> dict[str, float]:
    """The curve values one progress event carries (its `done` is the step on the unit's axis):
    training loss and L1 from a `CURVE` event, held-out PSNR and SSIM from a `HELD_OUT` one."""
    source = {CURVE: "train", HELD_OUT: "eval"}.get(event.message)
    return {n: event.metrics[k] for n, (h, k) in CURVES.items() if h == source and k in event.metrics}


def curve_series(job: AutoencoderJob) -> dict[str, list[tuple[int, float]]]:
    """{curve: [(step, value), ...]} of the finished run, from its checkpoints (call before `export`,
    which retires them): what the flow layer writes as the unit's step-wise curves."""
    history = curves(job)
    return {n: [(r["step"], r[k]) for r in history[h] if k in r] for n, (h, k) in CURVES.items()}


def export(job: AutoencoderJob, out_dir: str | Path, *, log: Log = _logger.info) -> dict:
    """Write `autoencoder.pt`, `metrics.json` and `reconstruction.png` to `out_dir`,
    then retire the work checkpoints (`work/status.json` records the finished run)."""
    out_dir = Path(out_dir)
    files = AutoencoderFiles(out_dir)
    device = resolve_device(job.device)
    ckpt = finished_checkpoint(job, job.final_phase)
    model = TriplaneAutoencoder(job.spec)
    model.load_state_dict(ckpt["models"]["autoencoder"])
    model.to(device).eval()
    clips = held_out_clips(job.val_store, job.modality, job.spec.frames, job.train.eval_clips, job.seed_for("eval"))
    recons = reconstruct_all(lambda x: model(x)[0], clips, device, job.train.batch_size)
    scores = reconstruction_metrics(clips, recons)
    info = read_info(job.val_store).modalities[job.modality]
    if info.kind == "image":  # the paper's protocol too: uint8 truncation, batch min-max
        wide = network_view(model)
        paper = (
            recons
            if wide is model
            else reconstruct_all(lambda x: wide.decode(model.encode(x)), clips, device, job.train.batch_size)
        )
        scores.update(paper_reconstruction_metrics(clips, paper, job.train.batch_size))
    save_png(files.reconstruction, reconstruction_grid(clips, recons, info))
    metrics = {
        **scores,
        "eval_clips": len(clips),
        "steps": job.train.steps,
        "gan_steps": job.train.gan.steps if job.train.gan.enabled else 0,
        "parameters": count_parameters(model),
        "latent_length": job.spec.latent_shape.length,
    }
    meta = {
        "unit": job.unit,
        "dataset": job.dataset,
        "modality": job.modality,
        "role": job.role,
        "fingerprint": job.fingerprint(job.final_phase),
        "metrics": scores,
        "init_file": None if job.init_file is None else [str(job.init_file), file_md5(job.init_file)],
    }
    save_autoencoder(files.model, model, meta)
    write_json(files.metrics, metrics)
    mark_finished(job.files.status, [job.checkpoint_path(phase) for phase in PHASES], meta)
    log(f"{job.unit}: held-out PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f} -> {out_dir}")
    return metrics
