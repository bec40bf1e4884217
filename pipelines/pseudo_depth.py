"""Flow `pseudo_depth`: Depth-Anything-V2 pseudo-labels for every raw video of a dataset.

One cached task per video writes `<paths.interim>/<dataset>/depth/<video_id>.npz`. The stage's
output folder is `persist: true` in dvc.yaml (DVC keeps finished videos when it reruns the
stage), so a video is trusted only if its file records the *label key* the current settings
imply: a digest of the video's input files, the settings that change labels (encoder, input
size, normalisation, precision, the weights file's md5, the source config but its split
assignment) and the labelling code. A Prefect cache hit whose file is missing or carries another key is refreshed, a task
whose file already carries the key returns without inference, and files of videos that are no
longer listed are pruned at the end. So a rerun after a crash redoes only unfinished videos and
a param change never reuses stale labels.

The model is loaded once per process (the thread pool shares it; each Dask worker holds one);
raw frames are read one video at a time per process (netCDF/HDF5 reads are not thread-safe).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from pipelines.caching import RESULT_SERIALIZER, file_digest, item_policy
from pipelines.reporting import PrefectProgress, publish_table
from syncvp.config import DatasetConfig, PathsConfig, to_plain
from syncvp.config.depth import TaskRunnerConfig
from syncvp.data import interim
from syncvp.data import pseudo_depth as pdepth
from syncvp.data.raw import RawVideo
from syncvp.data.sources import raw_videos
from syncvp.progress import ProgressEvent
from syncvp.runtime import resolve_device, torch_threads

# Module state is only touched through module-level functions: Dask pickles the task's function
# by value, and a lock referenced from its body could not be pickled.
_MODEL_LOCK = threading.Lock()
_MODEL: dict[tuple, object] = {}  # at most one entry: (weights, md5, encoder, device) -> model


def shared_model(weights: str, weights_md5: str, encoder: str, device: str):
    """The process's Depth-Anything-V2 on `device`, loaded on first use."""
    key = (weights, weights_md5, encoder, device)
    with _MODEL_LOCK:
        if key not in _MODEL:
            _MODEL.clear()
            _MODEL[key] = pdepth.load_estimator(weights, encoder, device)
        return _MODEL[key]


def read_frames(dataset: str, config: DatasetConfig, raw_dir: Path, video_id: str) -> np.ndarray:
    """RGB uint8 [T, H, W, 3] of one raw video (netCDF reads take syncvp.io.netcdf's lock)."""
    video = next(v for v in raw_videos(dataset, config, raw_dir) if v.video_id == video_id)
    return video.load()


def recorded_key(path: Path) -> str | None:
    """The label key stored in a pseudo-depth file (None if absent or unreadable)."""
    try:
        with np.load(path) as data:
            return json.loads(str(data["attrs"])).get("label_key")
    except (OSError, ValueError, KeyError):
        return None


def label_key(settings: dict, video_id: str, digests: list[str]) -> str:
    return hashlib.md5(json.dumps([settings, video_id, digests], sort_keys=True).encode()).hexdigest()


def task_runner(cfg: TaskRunnerConfig):
    """A thread pool, or prefect-dask's DaskTaskRunner (a running cluster, or a local one)."""
    if cfg.kind == "threads":
        return ThreadPoolTaskRunner(max_workers=cfg.workers)
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise RuntimeError(
            "task_runner.kind dask needs a Prefect server (Dask workers report task runs to it): "
            "start one with `make ui` and export PREFECT_API_URL, or use kind: threads"
        )
    from prefect_dask import DaskTaskRunner

    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.workers, "threads_per_worker": 1, "processes": True})


@task(
    cache_policy=item_policy("files", exclude=("config", "raw_dir", "weights", "batch_size", "device")),
    result_serializer=RESULT_SERIALIZER,
    task_run_name="depth-{video_id}",
)
def label_video(
    dataset: str,
    config: DatasetConfig,
    raw_dir: Path,
    video_id: str,
    files: list[str],
    settings: dict,
    key: str,
    weights: str,
    batch_size: int,
    device: str,
    out: Path,
) -> dict:
    """Estimate, normalise and write the pseudo-depth of one raw video (skipped if up to date)."""
    if out.exists() and recorded_key(out) == key:
        return {"video": video_id, "status": "up to date"}
    start = time.monotonic()
    frames = read_frames(dataset, config, raw_dir, video_id)
    model = shared_model(weights, settings["weights_md5"], settings["encoder"], device)
    depth = pdepth.estimate_depth(
        model,
        frames,
        input_size=settings["input_size"],
        batch_size=batch_size,
        normalization=settings["normalization"],
        precision=settings["precision"],
    )
    attrs = pdepth.attributes(
        encoder=settings["encoder"],
        input_size=settings["input_size"],
        normalization=settings["normalization"],
        precision=settings["precision"],
        device=resolve_device(device),
        weights=f"{Path(weights).name} md5 {settings['weights_md5']}",
    )
    interim.write_depth(out, depth, {**attrs, "video_id": video_id, "label_key": key})
    seconds = time.monotonic() - start
    return {
        "video": video_id,
        "status": "labelled",
        "frames": len(frames),
        "size": f"{frames.shape[1]}x{frames.shape[2]}",
        "frames_per_s": round(len(frames) / seconds, 3),
    }


def label_settings(config: DatasetConfig, weights_md5: str) -> dict:
    """Everything that changes a label (see the module docstring); the source's split assignment
    (`assignment_keys`, e.g. a leave-one-out fold's held_out) does not, so a new fold reuses the labels."""
    cfg = config.pseudo_depth
    assignment = getattr(config.source, "assignment_keys", ())
    return {
        "encoder": cfg.encoder,
        "input_size": cfg.input_size,
        "normalization": cfg.normalization,
        "precision": cfg.precision,
        "weights_md5": weights_md5,
        "source": {k: v for k, v in to_plain(config.source).items() if k not in assignment},
        "code": pdepth.code_digest(),
    }


def prune(depth_dir: Path, keep: set[str]) -> list[str]:
    """Remove pseudo-depth files of videos no longer listed, and temporaries of killed runs."""
    removed = []
    for path in sorted(depth_dir.glob("*.npz")) + sorted(depth_dir.glob(".*.tmp-*")):
        if path.name.startswith(".") or path.stem not in keep:
            path.unlink()
            removed.append(path.name)
    return removed


@flow(name="pseudo_depth", log_prints=True)
def pseudo_depth(
    dataset: str, config: DatasetConfig, paths: PathsConfig, weights: Path | None, device: str, threads: int
) -> str:
    """Depth-Anything-V2 pseudo-depth of every raw video into `<paths.interim>/<dataset>/depth/`."""
    cfg = config.pseudo_depth
    if cfg is None:
        raise ValueError(f"dataset {dataset!r} has no pseudo_depth settings (datasets.{dataset}.pseudo_depth is null)")
    path = pdepth.estimator_weights(weights, cfg.encoder)  # before any frame is read
    device = str(resolve_device(device))
    settings = label_settings(config, file_digest(path))
    runner = task_runner(cfg.task_runner)
    raw = config.source.input_dir(dataset, paths)  # the folder `pipeline.pseudo_depth` names (a DVC dependency)
    videos = raw_videos(dataset, config, raw)
    out_dir = paths.interim_dir(dataset)
    digests = {f: file_digest(f) for f in sorted({str(f) for v in videos for f in v.files})}
    progress = PrefectProgress(
        f"{dataset}-pseudo-depth-progress", f"{dataset}: pseudo-depth, videos done / {len(videos)}"
    )
    progress(ProgressEvent("videos", 0, len(videos)))
    with torch_threads(threads), runner:
        futures = [
            runner.submit(*_call(dataset, config, raw, v, settings, digests, path, device, out_dir)) for v in videos
        ]
        rows = []
        for future in as_completed(futures):
            row = future.result()
            rows.append({**row, "status": "cached"} if future.state.name == "Cached" else row)
            progress(ProgressEvent("videos", len(rows), len(videos)))
    depth_dir = interim.depth_file(out_dir, "any").parent
    removed = prune(depth_dir, {v.video_id for v in videos})
    rows.sort(key=lambda r: r["video"])
    publish_table(f"{dataset}-pseudo-depth", rows, f"Depth-Anything-V2 {cfg.encoder} pseudo-depth of {dataset!r}")
    get_run_logger().info(
        f"{sum(r['status'] == 'labelled' for r in rows)} labelled, {len(rows)} videos in {out_dir}"
        + (f"; pruned {len(removed)} stale files" if removed else "")
    )
    return str(out_dir)


def _call(
    dataset: str,
    config: DatasetConfig,
    raw: Path,
    video: RawVideo,
    settings: dict,
    digests: dict,
    weights: Path,
    device: str,
    out_dir: Path,
) -> tuple:
    """(task, parameters) for one video; the task's cache is refreshed unless its file is current."""
    files = [str(f) for f in video.files]
    key = label_key(settings, video.video_id, [digests[f] for f in files])
    out = interim.depth_file(out_dir, video.video_id)
    current = out.exists() and recorded_key(out) == key
    params = dict(
        dataset=dataset,
        config=config,
        raw_dir=raw,
        video_id=video.video_id,
        files=files,
        settings=settings,
        key=key,
        weights=str(weights),
        batch_size=config.pseudo_depth.batch_size,
        device=device,
        out=out,
    )
    return label_video.with_options(refresh_cache=not current), params
