"""Data flows: `synthesize` (generate a synthetic dataset) and `prepare` (raw -> clip stores).

Both write into a temporary sibling of their output folder and rename it at the end, so an
interrupted run leaves nothing DVC would take for a finished output. Each starts by deleting the
temporary siblings a killed run of the same dataset left (`.<dataset>.tmp-*`); results and
artifacts name the final files, never the temporary ones.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

from pipelines.reporting import PrefectProgress, publish_table
from syncvp.config import SPLITS, DatasetConfig, PathsConfig
from syncvp.config.layout import ClipStores, split_file
from syncvp.data import era5, store, synthetic_era5, synthetic_video
from syncvp.data import prepare as prep
from syncvp.io.atomic import atomic_dir, remove_stale, write_json


def remove_leftovers(final: Path) -> None:
    """Delete the temporary siblings of `final` that a killed run of this stage left behind."""
    removed = remove_stale(final)
    if removed:
        get_run_logger().warning(
            f"removed what a killed run left in {final.parent}: {', '.join(p.name for p in removed)}"
        )


# --------------------------------------------------------------------------------------------
# synthesize


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


# --------------------------------------------------------------------------------------------
# prepare


@task(task_run_name="constants")
def dataset_constants(name: str, config: DatasetConfig, paths: PathsConfig) -> dict:
    constants = prep.dataset_constants(name, config, paths)
    for field, (lo, hi, how) in constants.get("norm", {}).items():
        get_run_logger().info(f"{field}: normalisation range [{lo:.6g}, {hi:.6g}] ({how})")
    return constants


@task(task_run_name="prepare-{split}")
def prepare_split(name: str, config: DatasetConfig, paths: PathsConfig, split: str, constants: dict, out: Path) -> dict:
    progress = PrefectProgress(f"{name}-prepare-{split}", f"{name}: preparing the {split} split")
    ds = prep.prepare_split(name, config, paths, split, constants, progress=progress)
    info = store.write_store(out, ds)
    return {
        "split": split,
        "videos": info.videos,
        "frames": info.frames,
        "size": f"{info.height}x{info.width}",
        "modalities": ",".join(info.modalities),
    }


@flow(name="prepare", log_prints=True)
def prepare(dataset: str, config: DatasetConfig, paths: PathsConfig) -> str:
    """Turn a dataset's input folder (`source.input_dir`: `<paths.raw>/<dataset>/` or the user's
    folder) into clip stores `<paths.processed>/<dataset>/<split>.nc`, with `summary.json` and
    `preview.png` beside them."""
    raw = Path(config.source.input_dir(dataset, paths))
    if not raw.exists():
        stage = config.source.producer
        hint = f"run `dvc repro {stage}@{dataset}` first" if stage else "point the dataset's source.root at your data"
        raise FileNotFoundError(f"{raw} does not exist: {hint}")
    final = paths.processed_dir(dataset)
    remove_leftovers(final)
    constants = dataset_constants(dataset, config, paths)
    with atomic_dir(final) as tmp:
        out = ClipStores(tmp)
        rows = [prepare_split(dataset, config, paths, s, constants, out.store(s)) for s in SPLITS]
        write_json(out.summary, prep.summary({s: out.store(s) for s in SPLITS}))
        prep.preview(out.store("test"), out.preview)
    publish_table(f"{dataset}-prepare", rows, f"Clip stores of {dataset!r}")
    return str(final)
