"""A fresh copy of the repository for `dvc repro`, its params shrunk to CI size, and a `dvc` runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def shrink(params: dict) -> dict:
    """The default params with every dataset and model cut to a few seconds of work."""
    for ds in params["datasets"].values():
        src = ds["source"]
        if src["kind"] == "synthetic_video":
            src.update(resolution=16, frames=12, videos={"train": 4, "val": 1, "test": 2}, supersample=1)
            ds.update(resolution=[16, 16], context_frames=2, future_frames=4, rollout_frames=8)
        elif src["kind"] == "synthetic_era5":
            months = ["2020-01", "2020-02", "2020-03"]
            src.update(months=months, grid=[12, 12])
            src["processing"].update(crop=None, splits={"train": months[:1], "val": months[1:2], "test": months[2:]})
            ds.update(resolution=[12, 12])
    params["autoencoder"].update(
        width=16, depth=1, heads=2, head_dim=8, ff_mult=2, axis_depth=1, axis_heads=1, axis_head_dim=8, axis_mlp=16
    )
    params["train_autoencoder"].update(
        steps=4, batch_size=2, grad_accum=1, eval_every=2, eval_clips=2, checkpoint_every=2, log_every=2, num_workers=0
    )
    params["train_autoencoder"]["gan"].update(enabled=False)
    params["unet"].update(model_channels=8, channel_mult=[1, 2], num_heads=2, norm_groups=4, attention_resolutions=[2])
    params["joint"].update(num_heads=2)
    for stage in ("train_single", "train_joint"):
        params[stage].update(
            steps=4, batch_size=2, grad_accum=1, checkpoint_every=2, log_every=2, loss_curve_every=2, num_workers=0
        )
    params["evaluate"].update(
        videos=2,
        batch_size=2,
        trajectories=1,
        conditions=["all", "each"],
        samples=1,
        metrics=["ssim", "psnr", "l2", "l1", "alignment"],
    )
    params["sampling"].update(steps=2)
    params["run"].update(threads=1)  # tiny models: one thread is faster (and robust on a busy machine)
    return params


def copy_repo(dst: Path) -> None:
    """The tracked and untracked, not ignored files of the checkout, committed in a new git repo."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for rel in files:
        if (REPO / rel).is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dst / rel)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], cwd=dst, check=True)


def dvc_env(**extra: str) -> dict[str, str]:
    """This environment with the venv's `dvc` and `python` first on PATH, and the test's Prefect API.

    Python may write bytecode caches: with PYTHONDONTWRITEBYTECODE set (some CI images set it)
    and a venv installed without .pyc files, every stage process would compile torch, prefect
    and the project from source again, about as long as the stage's own work."""
    from prefect.settings import PREFECT_API_URL

    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        DVC_NO_ANALYTICS="1",
        PREFECT_API_URL=PREFECT_API_URL.value(),
        **extra,
    )
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def dvc(args, cwd, env, check=True):
    res = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"dvc {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def check_evaluation(out: Path, name: str, modalities, fields=()) -> None:
    """metrics.json holds the model and the references for every condition; plots, samples and
    compare.md exist. Image modalities have an SSIM in (0, 1] for the model and copy-last; field
    modalities (`fields`, ERA5) a finite positive L1 in physical units, and no alignment (which
    needs two image modalities: the `ground_truth` row comes with it)."""
    import json
    import math

    metrics = json.loads((out / "metrics.json").read_text())[name]
    images = [m for m in modalities if m not in fields]
    assert {"all", "copy_last", "autoencoder", "single-all", *modalities, *(f"single-{m}" for m in modalities)} <= set(
        metrics
    )
    assert ("ground_truth" in metrics) == (len(images) >= 2)
    assert "| all → " in (out / "tables" / "compare.md").read_text()
    for setting in ("all", "copy_last"):
        for m in images:
            assert 0 < metrics[setting]["standard"][m]["ssim"] <= 1
        for m in fields:
            assert 0 < metrics[setting]["standard"][m]["l1"] < math.inf
    assert list((out / "plots").glob("*.tsv")) and list((out / "samples").glob("*.gif"))
    assert (out / "tables" / "videos.csv").is_file()
