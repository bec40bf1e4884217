"""The `prepare` flow: a dataset's raw input folder -> clip stores, summary and preview.

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
from syncvp.config.layout import ClipStores
from syncvp.data import prepare as prep
from syncvp.data import store
from syncvp.io.atomic import atomic_dir, write_json


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
