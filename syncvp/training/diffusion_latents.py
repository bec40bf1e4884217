"""Training windows and their latents under the frozen autoencoders.

A training item is one window of `context_frames + future_frames` frames of a training video
(every start, stride 1: `ClipDataset(window="all")`), so "online" and "precomputed" runs see
the same items in the same order. A window's latents are

    context[m] = E_ctx^m(clip[m][:, :, :Tc])   [C', L_c]    (diffusion.context_encoder: context)
               = E_fut^m(conditioning_clip(clip[m][:, :, :Tc], Tf))  [C', L_f]   (context_encoder: future;
                 the last frame held, or carried along its optical flow: context_extrapolation)
                 followed by E_fut^m(still last) - E_fut^m(still previous)  [2C', L_f]   (+ context_motion)
    future[m]  = E_fut^m(clip[m][:, :, Tc:Tc+Tf])   [C', L_f]

`latents="online"` encodes every batch (`encode_batch`); `latents="precompute"` encodes every
window once (`precompute`) into `<work>/latents-<modality>-<key>.pt`, where the key hashes the
modality's autoencoder files, the training data and the window layout, and serves them with
`LatentDataset`. The joint stage reuses the stage-1 units' caches (same key, same windows).

A cache is checked before use (`find_caches`): one that is truncated, foreign or of other shapes
(a killed copy, a disk error, a hand-placed file) is reported in a one-line warning and encoded
again, never fatal; a bad cache in another unit's work directory is left there and skipped.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable, Mapping

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from syncvp.config.layout import latent_cache_name
from syncvp.config.roles import RolePair
from syncvp.data.dataset import ClipDataset
from syncvp.diffusion.conditioning import split_clip
from syncvp.io.atomic import atomic_path
from syncvp.io.checkpoint import config_hash
from syncvp.io.model_file import ModelFileError, read_torch_file
from syncvp.models.autoencoder import TriplaneAutoencoder
from syncvp.models.context import ContextEncoder, Extrapolation, encode_context
from syncvp.progress import ProgressEvent, ProgressFn, no_progress
from syncvp.training import distributed
from syncvp.training.context_probe import probe_indices
from syncvp.training.data import BatchStream
from syncvp.training.diffusion_job import DiffusionJob
from syncvp.training.fastpath import pin_memory

Encoders = Mapping[str, RolePair[TriplaneAutoencoder]]
"""{modality: its frozen context and future autoencoders}."""
CACHE_FORMAT = "syncvp-latents"
Log = Callable[[str], None]
_logger = logging.getLogger(__name__)


def windows(job: DiffusionJob) -> ClipDataset:
    """Every training window (stride 1) of the job's modalities."""
    return ClipDataset(
        job.train_store, list(job.modalities), job.clip_frames, seed=job.seed_for("windows"), window="all", stride=1
    )


@torch.no_grad()
def encode_batch(
    clip: Mapping[str, Tensor],
    encoders: Encoders,
    context_frames: int,
    future_frames: int,
    context_encoder: ContextEncoder,
    motion: bool = False,
    extrapolation: Extrapolation | Mapping[str, Extrapolation] = "hold",
    blur: float = 0.0,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """{m: clip [B, C, Tc+Tf, H, W]} -> ({m: context latent [B, C_c, L_c]}, {m: future latent [B, C', L_f]})
    (`extrapolation`: one for every modality, or {m: its extrapolation})."""
    context, future = split_clip({m: clip[m] for m in encoders}, context_frames, future_frames)
    return (
        {
            m: encode_context(
                context[m],
                context_encoder,
                encoders[m].context,
                encoders[m].future,
                motion=motion,
                extrapolation=extrapolation if isinstance(extrapolation, str) else extrapolation[m],
                blur=blur,
            )
            for m in encoders
        },
        {m: encoders[m].future.encode(future[m]) for m in encoders},
    )


def cache_name(job: DiffusionJob, modality: str) -> str:
    """`latents-<modality>-<key>.pt`: the key hashes the modality's autoencoder files, the
    training data and the window layout, so any change re-encodes."""
    layout = {
        "autoencoders": job.autoencoder_digests[modality],
        "data": job.data_digest,
        "frames": [job.context_frames, job.future_frames],
        "context_encoder": job.diffusion.context_encoder,
    }
    if job.diffusion.context_motion:  # (keys of caches without motion channels stay as they were)
        layout["context_motion"] = True
    if job.diffusion.extrapolation_of(modality) != "hold":  # (and so do those of held contexts)
        layout["context_extrapolation"] = job.diffusion.extrapolation_of(modality)
        if job.diffusion.extrapolation_blur:
            layout["extrapolation_blur"] = job.diffusion.extrapolation_blur
    key = config_hash(layout)
    return latent_cache_name(modality, key[:16])


def window_count(job: DiffusionJob) -> int:
    """How many training windows the unit has (the length of every latent cache)."""
    data = windows(job)
    try:
        return len(data)
    finally:
        data.reader.close()


def check_cache(path: Path, job: DiffusionJob, modality: str, count: int) -> None:
    """Raise `ModelFileError` unless `path` is a latent cache of `count` windows in the unit's
    latent shapes (the tensors are memory-mapped, not read)."""
    payload = read_torch_file(path, CACHE_FORMAT, keys=("context", "future"), label="latent cache", mmap=True)
    future, context = job.shapes[modality].future, job.shapes[modality].context
    for key, shape in (("context", context), ("future", future)):
        value = payload[key]
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        if got != (count, shape.channels, shape.length):
            raise ModelFileError(
                f"{path} is not a latent cache of {job.unit} (mismatched: {key} latents {got}, "
                f"the unit has {(count, shape.channels, shape.length)})"
            )


def find_caches(job: DiffusionJob, warn: Log = _logger.warning) -> dict[str, Path | None]:
    """Each modality's usable latent cache, or None: the first that checks out of the unit's work
    directory and `job.latent_sources` (the stage-1 units' work directories, whose caches the
    joint stage reuses). A bad cache is reported through `warn` (one line); in the unit's own
    work directory it is also removed, so that `precompute` writes a fresh one."""
    count, found = None, {}
    for m in job.modalities:
        name, found[m] = cache_name(job, m), None
        for folder in (job.work_dir, *job.latent_sources):
            path = folder / name
            if not path.exists():
                continue
            count = window_count(job) if count is None else count
            try:
                check_cache(path, job, m, count)
            except ModelFileError as exc:
                warn(f"{exc}: encoding the training windows again into {job.work_dir / name}")
                if folder == job.work_dir:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
                continue
            found[m] = path
            break
    return found


@torch.no_grad()
def precompute(
    job: DiffusionJob,
    encoders: Encoders,
    device: torch.device,
    *,
    batch_size: int = 32,
    progress: ProgressFn = no_progress,
    warn: Log = _logger.warning,
) -> dict[str, Path]:
    """Encode every training window once per modality (or reuse a cache that checks out,
    `find_caches`); returns the files.

    Each file holds {"format", "context": [N, C', L_c], "future": [N, C', L_f]} (float32, CPU)
    in window order; stale caches of the modality in the work directory are removed, and so are
    the temporary files a killed write of one left (`.latents-<modality>-*.pt.tmp-*`).
    """
    for m in job.modalities:  # what a killed write of a cache left (`atomic_path`)
        for stale in job.work_dir.glob(f".{latent_cache_name(m, '*')}.tmp-*"):
            stale.unlink()
    found = find_caches(job, warn)
    paths = {m: found[m] or job.work_dir / cache_name(job, m) for m in job.modalities}
    todo = [m for m in job.modalities if found[m] is None]
    if not todo:
        return paths
    data = windows(job)
    parts: dict[str, dict[str, list[Tensor]]] = {m: {"context": [], "future": []} for m in todo}
    try:
        done = 0
        for clip in DataLoader(data, batch_size=batch_size, shuffle=False):
            ctx, fut = encode_job_batch(job, {m: clip[m].to(device) for m in todo}, {m: encoders[m] for m in todo})
            for m in todo:
                parts[m]["context"].append(ctx[m].float().cpu())
                parts[m]["future"].append(fut[m].float().cpu())
            done += len(clip["video"])
            progress(ProgressEvent(f"{job.unit} latents", done, len(data)))
    finally:
        data.reader.close()
    for m in todo:
        for stale in job.work_dir.glob(latent_cache_name(m, "*")):
            stale.unlink()
        with atomic_path(paths[m]) as tmp:
            torch.save({"format": CACHE_FORMAT, **{k: torch.cat(v) for k, v in parts[m].items()}}, tmp)
    return paths


class LatentDataset(Dataset):
    """Precomputed window latents {modality: cache file}; item `(epoch, index)` or `index` ->
    {"context": {m: [C', L_c]}, "future": {m: [C', L_f]}}."""

    def __init__(self, paths: Mapping[str, str | Path]):
        self.context, self.future = {}, {}
        for m, path in paths.items():
            payload = read_torch_file(
                path,
                CACHE_FORMAT,
                keys=("context", "future"),
                label="latent cache",
                remedy="delete it: training encodes the windows again",
            )
            self.context[m], self.future[m] = payload["context"], payload["future"]
        sizes = {len(v) for v in self.future.values()}
        if len(sizes) != 1:
            raise ValueError(f"latent caches of different lengths: { {m: len(v) for m, v in self.future.items()} }")
        self.size = sizes.pop()

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index = key[1] if isinstance(key, tuple) else key
        return {
            "context": {m: v[index] for m, v in self.context.items()},
            "future": {m: v[index] for m, v in self.future.items()},
        }


def batch_stream(
    job: DiffusionJob,
    encoders: Encoders,
    device: torch.device,
    progress: ProgressFn = no_progress,
    warn: Log = _logger.warning,
) -> BatchStream:
    """Training batches: precomputed latents, or clips to encode online (same items, same order)."""
    size = distributed.per_rank_batch(job.train.batch_size, key=f"train_{job.kind}.batch_size")
    shard = dict(rank=distributed.rank(), world=distributed.world_size(), pin_memory=pin_memory(device))
    if job.train.latents == "precompute":
        if not distributed.is_main():
            distributed.barrier()  # rank 0 encodes (or finds) the cache first
        files = precompute(job, encoders, device, progress=progress, warn=warn)
        if distributed.is_main():
            distributed.barrier()
        return BatchStream(LatentDataset(files), size, seed=job.seed_for("order"), **shard)
    return BatchStream(windows(job), size, seed=job.seed_for("order"), num_workers=job.train.num_workers, **shard)


def encode_job_batch(
    job: DiffusionJob, clip: Mapping[str, Tensor], encoders: Encoders
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """`encode_batch` of the modalities in `encoders` with the job's frames and its `diffusion`
    conditioning settings."""
    return encode_batch(
        clip,
        encoders,
        job.context_frames,
        job.future_frames,
        job.diffusion.context_encoder,
        motion=job.diffusion.context_motion,
        extrapolation=job.diffusion.extrapolations(job.modalities),
        blur=job.diffusion.extrapolation_blur,
    )


def batch_latents(job: DiffusionJob, batch: Mapping, encoders: Encoders) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(context, future) latents of a training batch: read from a `LatentDataset` batch, or
    encoded now from a `ClipDataset` batch."""
    if "future" in batch:
        return dict(batch["context"]), dict(batch["future"])
    return encode_job_batch(job, batch, encoders)


def sample_latents(
    job: DiffusionJob, encoders: Encoders, device: torch.device, count: int
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(context, future) latents of `count` training windows spread evenly over the training set
    (read from the latent caches when they check out, else encoded now)."""
    found = find_caches(job) if job.train.latents == "precompute" else {}
    if found and all(found.values()):
        cached = LatentDataset(found)
        picked = [cached[i] for i in probe_indices(len(cached), count)]
        return (
            {m: torch.stack([it["context"][m] for it in picked]).to(device) for m in job.modalities},
            {m: torch.stack([it["future"][m] for it in picked]).to(device) for m in job.modalities},
        )
    data = windows(job)
    try:
        items = [data[i] for i in probe_indices(len(data), count)]
    finally:
        data.reader.close()
    contexts, futures = {m: [] for m in job.modalities}, {m: [] for m in job.modalities}
    for start in range(0, len(items), 32):
        part = items[start : start + 32]
        clip = {m: torch.stack([it[m] for it in part]).to(device) for m in job.modalities}
        c, f = encode_job_batch(job, clip, encoders)
        for m in job.modalities:
            contexts[m].append(c[m])
            futures[m].append(f[m])
    return {m: torch.cat(v) for m, v in contexts.items()}, {m: torch.cat(v) for m, v in futures.items()}
