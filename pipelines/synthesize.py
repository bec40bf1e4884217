"""The `synthesize` flow: generate a synthetic dataset (videos or ERA5-like months) from its seed.

Writes into a temporary sibling of its output folder and renames it at the end, so an interrupted
run leaves nothing DVC would take for a finished output; starts by deleting the temporary siblings
a killed run of the same dataset left (`.<dataset>.tmp-*`, `pipelines.outputs.remove_leftovers`);
results and artifacts name the final files, never the temporary ones.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

from pipelines.outputs import remove_leftovers
from pipelines.reporting import PrefectProgress, publish_table
from syncvp.config import SPLITS, DatasetConfig, PathsConfig
from syncvp.config.layout import split_file
from syncvp.data import era5, store, synthetic_era5, synthetic_video
from syncvp.io.atomic import atomic_dir


@task(task_run_name="render-{split}")
def render_video_split(name: str, source, split: str, out: Path) -> dict:
    progress = PrefectProgress(f"{name}-render-{split}", f"{name}: rendering the {split} split")
    ds = synthetic_video.render_split(name, source, split, progress=progress)
    info = store.write_store(out, ds)
    return {"split": split, "videos": info.videos, "frames": info.frames, "file": out.name}


@task(task_run_name="era5-month-{month}")
def write_era5_month(source, month: str, out: Path) -> dict:
    synthetic_era5.write_month(
        out,
        source.seed,
        month,
        grid=tuple(source.grid),
        step=source.step,
        north=source.north,
        west=source.west,
        layout=source.layout,
    )
    info = era5.check_month_file(out, era5.month_request(source, month))  # the checks a download passes
    return {"month": month, "file": out.name, "layout": source.layout, "time_steps": info["time_steps"]}


@flow(name="synthesize", log_prints=True)
def synthesize(dataset: str, config: DatasetConfig, paths: PathsConfig) -> str:
    """Generate one synthetic dataset from its seed into `<paths.raw>/<dataset>/`."""
    source = config.source
    final = paths.raw_dir(dataset)
    remove_leftovers(final)
    with atomic_dir(final) as tmp:
        if source.kind == "synthetic_video":
            rows = [render_video_split(dataset, source, s, split_file(tmp, s)) for s in SPLITS]
        elif source.kind == "synthetic_era5":
            rows = [write_era5_month(source, m, tmp / synthetic_era5.month_filename(m)) for m in source.months]
        else:
            raise ValueError(f"dataset {dataset!r}: source kind {source.kind!r} is not synthetic")
    rows = [{**r, "file": str(final / r["file"])} for r in rows]  # the final files, not the temporary ones
    publish_table(f"{dataset}-synthesize", rows, f"Synthetic dataset {dataset!r}")
    get_run_logger().info(f"wrote {len(rows)} files to {final}")
    return str(final)
