"""Time of the `evaluate` stage's work per batch at the default params.yaml sizes (hand-run).

    python -m benchmarks.evaluate [--params params.yaml] [--dataset synthetic] [--repeats 2]

Builds random-weight autoencoders and a joint model of the configured sizes, a random clip
store of `evaluate.batch_size` videos, and times `run_batch` (rollout of `rollout_frames` frames
for N trajectories + scoring) and `run_baseline`; prints the median seconds per batch and the
estimated stage time (settings x batches). Random weights: the speed does not depend on them.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from syncvp.config import load_params
from syncvp.data import store
from syncvp.evaluation import plan_evaluation, run_baseline, run_batch
from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder, save_autoencoder
from syncvp.models.diffusion_file import save_diffusion_model
from syncvp.models.factory import build_joint_unet
from syncvp.runtime import configure_threads


def _channels(modality: str) -> int:
    """Channels of the random store: 3 for `rgb`, 1 for any other modality (depth, fields as images)."""
    return 3 if modality == "rgb" else 1


def _files(params, name: str, paths, videos: int) -> None:
    ds = params.datasets[name]
    h, w = ds.resolution
    rng = np.random.default_rng(0)
    frames = ds.context_frames + ds.rollout_frames
    arrays = {}
    for m in ds.modalities:
        video = rng.integers(0, 256, (videos, frames, h, w, _channels(m)), dtype=np.uint8)
        arrays[m] = video if video.shape[-1] > 1 else video[..., 0]
    store.write_store(paths.store(name, "test"), store.build_dataset(arrays, dataset=name, split="test"))
    shapes = {}
    for m in ds.modalities:
        aes = []
        for role, t in (("context", ds.context_frames), ("future", ds.future_frames)):
            spec = AutoencoderSpec.from_config(params.autoencoder, channels=_channels(m), frames=t, resolution=(h, w))
            ae = TriplaneAutoencoder(spec)
            save_autoencoder(paths.autoencoder(name, m, role).model, ae)
            aes.append(ae.latent_shape)
        # with context_encoder future the conditioning lies in the future latent space
        if params.diffusion.context_encoder == "future":
            motion = params.diffusion.context_motion
            shapes[m] = (aes[1], aes[1].with_channels(2 * aes[1].channels) if motion else aes[1])
        else:
            shapes[m] = (aes[1], aes[0])
    model = build_joint_unet(params.unet, params.joint, shapes)
    save_diffusion_model(
        paths.joint(name).model,
        model,
        shapes=shapes,
        unet=params.unet,
        diffusion=params.diffusion,
        joint=params.joint,
        meta={"context_frames": ds.context_frames, "future_frames": ds.future_frames},
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    params = load_params(args.params)
    configure_threads(params.run.threads)
    ev = dataclasses.replace(params.evaluate, baselines=())  # the model's own rollouts (references not timed)
    with tempfile.TemporaryDirectory() as tmp:
        paths = dataclasses.replace(
            params.paths, processed=Path(tmp) / "p", models=Path(tmp) / "m", eval=Path(tmp) / "e"
        )
        _files(params, args.dataset, paths, ev.batch_size)
        plan = plan_evaluation(args.dataset, params.datasets[args.dataset], ev, params.sampling, params.weights, paths)
        rows = []
        for name, fn in (
            ("run_batch (all)", lambda: run_batch(plan, plan.settings[0], 0)),
            ("run_baseline", lambda: run_baseline(plan, 0)),
        ):
            fn()  # warm-up (loads the networks)
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            rows.append((name, statistics.median(times)))
    n_videos = ev.videos or "all"
    print(
        f"threads {torch.get_num_threads()}, batch {ev.batch_size} videos x {ev.trajectories} trajectories, "
        f"{params.datasets[args.dataset].rollout_frames} frames, {params.sampling.steps} steps"
    )
    print("| work | s per batch |\n|---|---|")
    for name, t in rows:
        print(f"| {name} | {t:.2f} |")
    batches = -(-ev.videos // ev.batch_size) if ev.videos else None
    if batches:
        total = batches * (len(plan.settings) * rows[0][1] + rows[1][1])
        print(f"estimated stage time for {n_videos} videos, {len(plan.settings)} settings: {total:.0f} s")


if __name__ == "__main__":
    main()
