"""Training windows and their latents under the frozen autoencoders.

A training item is one window of `context_frames + future_frames` frames of a training video
(every start, stride 1: `ClipDataset(window="all")`), so "online" and "precomputed" runs see
the same items in the same order. A window's latents are

    context[m] = E_ctx^m(clip[m][:, :, :Tc])   [C', L_c]
    future[m]  = E_fut^m(clip[m][:, :, Tc:Tc+Tf])   [C', L_f]

`latents="online"` encodes every batch (`encode_batch`); `latents="precompute"` encodes every
window once (`precompute`) into `<work>/latents-<key>.pt`, where the key hashes the autoencoder
files, the training data and the window layout, and serves them with `LatentDataset`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from syncvp.data.dataset import ClipDataset
from syncvp.diffusion.conditioning import split_clip
from syncvp.io.atomic import atomic_path
from syncvp.io.checkpoint import config_hash
from syncvp.models.autoencoder import TriplaneAutoencoder
from syncvp.progress import ProgressEvent, ProgressFn, no_progress
from syncvp.training.diffusion_job import DiffusionJob

Encoders = Mapping[str, tuple[TriplaneAutoencoder, TriplaneAutoencoder]]
"""{modality: (context autoencoder, future autoencoder)}, frozen."""
CACHE_FORMAT = "syncvp-latents"


def windows(job: DiffusionJob) -> ClipDataset:
    """Every training window (stride 1) of the job's modalities."""
    return ClipDataset(job.train_store, list(job.modalities), job.clip_frames, seed=job.seed_for("windows"),
                       window="all", stride=1)


@torch.no_grad()
def encode_batch(clip: Mapping[str, Tensor], encoders: Encoders, context_frames: int,
                 future_frames: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """{m: clip [B, C, Tc+Tf, H, W]} -> ({m: context latent [B, C', L_c]}, {m: future latent [B, C', L_f]})."""
    context, future = split_clip({m: clip[m] for m in encoders}, context_frames, future_frames)
    return ({m: encoders[m][0].encode(context[m]) for m in encoders},
            {m: encoders[m][1].encode(future[m]) for m in encoders})


def cache_path(job: DiffusionJob) -> Path:
    """`<work>/latents-<key>.pt`: the key changes with the autoencoders, the data and the windows."""
    key = config_hash({"autoencoders": job.autoencoder_digests, "data": job.data_digest,
                       "frames": [job.context_frames, job.future_frames], "modalities": list(job.modalities)})
    return job.work_dir / f"latents-{key[:16]}.pt"


@torch.no_grad()
def precompute(job: DiffusionJob, encoders: Encoders, device: torch.device, *, batch_size: int = 32,
               progress: ProgressFn = no_progress) -> Path:
    """Encode every training window once (or reuse the cache); returns the cache file.

    The file holds {"format", "key", "context": {m: [N, C', L_c]}, "future": {m: [N, C', L_f]}}
    (float32, CPU) in window order; stale caches of the unit are removed.
    """
    path = cache_path(job)
    if path.is_file():
        return path
    data = windows(job)
    try:
        loader = DataLoader(data, batch_size=batch_size, shuffle=False)
        parts: dict[str, dict[str, list[Tensor]]] = {"context": {m: [] for m in encoders},
                                                     "future": {m: [] for m in encoders}}
        done = 0
        for clip in loader:
            ctx, fut = encode_batch({m: clip[m].to(device) for m in encoders}, encoders, job.context_frames,
                                    job.future_frames)
            for m in encoders:
                parts["context"][m].append(ctx[m].float().cpu())
                parts["future"][m].append(fut[m].float().cpu())
            done += len(clip["video"])
            progress(ProgressEvent(f"{job.unit} latents", done, len(data)))
    finally:
        data.reader.close()
    payload = {"format": CACHE_FORMAT, "key": path.stem,
               **{role: {m: torch.cat(v) for m, v in parts[role].items()} for role in parts}}
    for stale in job.work_dir.glob("latents-*.pt"):
        stale.unlink()
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


class LatentDataset(Dataset):
    """Precomputed window latents; item `(epoch, index)` or `index` ->
    {"context": {m: [C', L_c]}, "future": {m: [C', L_f]}}."""

    def __init__(self, path: str | Path):
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != CACHE_FORMAT:
            raise ValueError(f"{path} is not a {CACHE_FORMAT} file")
        self.context, self.future = payload["context"], payload["future"]
        self.size = len(next(iter(self.future.values())))

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index = key[1] if isinstance(key, tuple) else key
        return {"context": {m: v[index] for m, v in self.context.items()},
                "future": {m: v[index] for m, v in self.future.items()}}


def batch_latents(batch: Mapping, encoders: Encoders, context_frames: int,
                  future_frames: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """(context, future) latents of a training batch: read from a `LatentDataset` batch, or
    encoded now from a `ClipDataset` batch."""
    if "future" in batch:
        return dict(batch["context"]), dict(batch["future"])
    return encode_batch(batch, encoders, context_frames, future_frames)
