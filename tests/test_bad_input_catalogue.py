"""The bad-input catalogue: what a user can get wrong, one row each, run the way the pipeline runs it.

Every row breaks one input (a params key, a source tree, an ERA5 month, a video, a pretrained
weights file, a model file, a `predict` argument) and runs the real stage entry point in this
process (`stages._entry.run`: params file -> flow under the Prefect test harness -> exit code and
printed lines), or `python -m syncvp predict`'s `main`. For each row:

1. exactly one `error:` line is printed, and it names the offending file or params key;
2. nothing is printed with a traceback (the traceback is in `$PREFECT_HOME/errors/<stage>@<item>.log`,
   or behind `--debug`);
3. nothing partial is left where DVC or Prefect would take it for done: none of the stage's
   outputs exists, and no temporary sibling (`.<name>.tmp-*`) is left beside them.

A few rows are inputs the pipeline must repair rather than refuse (a bad latent cache, an ERA5
month whose data rotted on disk); they assert the repair. Rows are cheap on purpose (tiny stores,
tiny models, files of a few kB): most of a row's second is the Prefect flow run itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import yaml

from syncvp.config import DatasetConfig, Params
from syncvp.config.loader import to_plain
from tests.conftest import with_pipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --------------------------------------------------------------------------------------------
# How a row runs and what it must show


@dataclass
class Outcome:
    """What a run printed (stderr, stdout and Prefect's console log, in order) and returned."""

    code: int
    text: str
    log: Path | None = None  # the stage's error log, when a stage failed


@dataclass
class Row:
    """One bad input, ready to run.

    Attributes:
        run: runs the stage or command once.
        names: what the `error:` line must contain (the file, the folder or the dotted key).
        outputs: paths that must not exist afterwards (the stage's DVC outputs).
        code: the expected exit code (2: bad params or a bad `predict` argument, 1: a stage that
            failed on its inputs, 0: an input the stage repairs).
        check: further assertions after the run (repairs).
    """

    run: Callable[[], Outcome]
    names: tuple[str, ...]
    outputs: tuple[Path, ...] = ()
    code: int = 1
    check: Callable[[Outcome], None] | None = None


class Ctx:
    """A row's workspace: tiny params with every path under `tmp`, and ways to run stages."""

    def __init__(self, tmp: Path, params: Params):
        self.tmp, self.params, self.paths = tmp, params, params.paths

    def with_dataset(self, name: str, dataset: DatasetConfig, **changes) -> Params:
        """The params plus one dataset (and the pipeline section it implies)."""
        self.params = with_pipeline(self.params, datasets={**self.params.datasets, name: dataset}, **changes)
        return self.params

    def params_file(self, edit: Callable[[dict], None] | None = None, text: str | None = None) -> Path:
        """The current params as a params.yaml (edited as plain data, or given as text)."""
        data = to_plain(self.params)
        if edit is not None:
            edit(data)
        path = self.tmp / "params.yaml"
        path.write_text(text if text is not None else yaml.safe_dump(data, sort_keys=False))
        return path

    def stage(self, name: str, item: str, params: Path | None = None) -> Callable[[], Outcome]:
        """Run `python -m stages.<name> <item> --params <file>` in this process."""
        from stages._entry import error_log, run

        def go() -> Outcome:
            spec = importlib.import_module(f"stages.{name}").SPEC
            file = params or self.params_file()
            with console() as out:
                code = run(spec, [item, "--params", str(file)])
            return Outcome(code, out.getvalue(), error_log(name, item))

        return go

    def predict(self, *argv: str) -> Callable[[], Outcome]:
        """Run `python -m syncvp predict ...` in this process."""
        from syncvp.__main__ import main

        def go() -> Outcome:
            with console() as out:
                code = main(["predict", *argv])
            return Outcome(code, out.getvalue())

        return go

    def outputs(self, stage: str, item: str) -> tuple[Path, ...]:
        """The DVC outputs of `stage@item` (dvc.yaml)."""
        p = self.paths
        models = p.model_dir(item)
        return {
            "synthesize": (p.raw_dir(item),),
            "prepare": (p.processed_dir(item),),
            "pseudo_depth": (p.interim_dir(item),),
            "train_autoencoder": tuple(
                models / f for f in ("autoencoder.pt", "reconstruction.png", "metrics.json", "dvclive")
            ),
            "train_single": tuple(models / f for f in ("diffusion.pt", "loss.png", "metrics.json", "plots", "dvclive")),
            "train_joint": tuple(models / f for f in ("joint.pt", "loss.png", "metrics.json", "plots", "dvclive")),
            "evaluate": tuple(
                p.eval_dir(item) / f for f in ("tables", "samples", "report.html", "metrics.json", "plots")
            ),
        }[stage]


@contextlib.contextmanager
def console():
    """Everything the stage prints: stdout, stderr and Prefect's console log handler."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.logging.handlers import PrefectConsoleHandler

    ensure_logging_setup()
    out = io.StringIO()
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    files = [h.console.file for h in handlers]
    for h in handlers:
        h.console.file = out
    try:
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
            yield out
    finally:
        for h, f in zip(handlers, files):
            h.console.file = f


TEMPORARY = re.compile(r"^\..+\.(tmp-[a-z0-9_]+|old-[0-9]+)$")


def leftovers(path: Path) -> list[Path]:
    """Temporary siblings of `path` (`atomic_path` / `atomic_dir`) and temporaries inside it."""
    found = [p for p in path.parent.glob(".*") if TEMPORARY.match(p.name)] if path.parent.is_dir() else []
    if path.is_dir():
        found += [p for p in path.rglob(".*") if TEMPORARY.match(p.name)]
    return found


# --------------------------------------------------------------------------------------------
# The catalogue: category -> {case: build(ctx) -> Row}

CATALOGUE: dict[str, dict[str, Callable[[Ctx], Row]]] = {}


def case(category: str, name: str):
    def register(build: Callable[[Ctx], Row]) -> Callable[[Ctx], Row]:
        assert name not in CATALOGUE.setdefault(category, {}), name
        CATALOGUE[category][name] = build
        return build

    return register


# --------------------------------------------------------------------------------------------
# params: refused before Prefect or torch load, naming the file and the dotted key


def params_row(ctx: Ctx, stage: str, item: str, edit, *names: str, text: str | None = None) -> Row:
    path = ctx.params_file(edit, text)
    return Row(ctx.stage(stage, item, path), names=(str(path), *names), outputs=ctx.outputs(stage, item), code=2)


@case("params", "a string where a number belongs")
def _(ctx):
    def edit(d):
        d["datasets"]["synthetic"]["source"]["frames"] = "12"

    return params_row(ctx, "synthesize", "synthetic", edit, "datasets.synthetic.source.frames")


@case("params", "an unknown key")
def _(ctx):
    return params_row(
        ctx,
        "train_single",
        "synthetic-rgb",
        lambda d: d["train_single"].update(stpes=10),
        "train_single.stpes: is not a known key",
    )


@case("params", "a missing key")
def _(ctx):
    return params_row(ctx, "prepare", "synthetic", lambda d: d["paths"].pop("processed"), "paths.processed: is missing")


@case("params", "a duplicate key")
def _(ctx):
    text = yaml.safe_dump(to_plain(ctx.params), sort_keys=False).replace("run:\n", "run:\n  seed: 1\n", 1)
    return params_row(ctx, "prepare", "synthetic", None, "line 3: key 'seed' is given twice", text=text)


@case("params", "sampling.steps above diffusion.timesteps")
def _(ctx):
    def edit(d):
        d["sampling"]["steps"] = d["diffusion"]["timesteps"] + 1

    return params_row(ctx, "evaluate", "synthetic", edit, "sampling.steps")


@case("params", "evaluate.conditions naming an unknown modality")
def _(ctx):
    return params_row(
        ctx,
        "evaluate",
        "synthetic",
        lambda d: d["evaluate"].update(conditions=["all", "semantic"]),
        "evaluate.conditions",
        "'semantic'",
    )


@case("params", "evaluate.conditions completing an unknown modality")
def _(ctx):
    def edit(d):
        d["evaluate"]["conditions"] = ["all", "complete-semantic"]
        d["sampling"]["completion_steps"] = 2

    return params_row(ctx, "evaluate", "synthetic", edit, "evaluate.conditions[1]", "'complete-semantic'")


@case("params", "train_joint.explicit naming an unknown modality")
def _(ctx):
    def edit(d):
        d["train_joint"]["explicit"] = {"rgb+depth": 0.5, "rgb": 0.2, "sem": 0.2, "": 0.1}

    return params_row(ctx, "train_joint", "synthetic", edit, "train_joint.explicit", "'sem'")


@case("params", "a dataset's own model change naming an unknown key")
def _(ctx):
    def edit(d):
        d["datasets"]["synthetic"]["models"] = {"autoencoder": {"patchsize": 8}, "unet": None}

    return params_row(ctx, "train_single", "synthetic-rgb", edit, "datasets.synthetic.models.autoencoder.patchsize")


@case("params", "init checkpoint without init_from")
def _(ctx):
    return params_row(
        ctx, "train_joint", "synthetic", lambda d: d["train_joint"].update(init="checkpoint"), "train_joint.init_from"
    )


@case("params", "a stale pipeline section")
def _(ctx):
    return params_row(
        ctx,
        "prepare",
        "synthetic",
        lambda d: d["pipeline"]["prepare"].pop("era5_synthetic"),
        "pipeline.prepare: must be",
    )


@case("params", "an item the pipeline does not list")
def _(ctx):
    row = params_row(ctx, "prepare", "cityscapes", None, "pipeline.prepare", "'cityscapes'")
    return dataclasses.replace(row, names=row.names[1:])  # the key, not the file


# --------------------------------------------------------------------------------------------
# source trees: `prepare` of image sequences (Cityscapes-like) and SYNTHIA folders


def city(ctx: Ctx) -> Path:
    """A Cityscapes-like tree (rgb + 16-bit disparity, 3 splits) and its dataset `city`."""
    from tests.data.sources.test_image_sequence import city_config, write_city, write_splits

    root = ctx.tmp / "cityscapes"
    write_city(root, "train", "aachen", snippets=1, frames=4)
    write_city(root, "val", "bochum", snippets=1, frames=4)
    write_city(root, "test", "berlin", snippets=1, frames=4)
    write_splits(root)
    ctx.with_dataset("city", city_config(root))
    return root


def prepare_row(ctx: Ctx, dataset: str, *names) -> Row:
    return Row(
        ctx.stage("prepare", dataset), names=tuple(str(n) for n in names), outputs=ctx.outputs("prepare", dataset)
    )


def frame(root: Path, modality: str, split: str = "val", city_name: str = "bochum", index: int = 2) -> Path:
    suffix = "leftImg8bit" if modality == "rgb" else "disparity"
    return root / modality / split / city_name / f"{city_name}_000000_{index:06d}_{suffix}.png"


@case("source trees", "a modality folder is missing")
def _(ctx):
    import shutil

    root = city(ctx)
    shutil.rmtree(root / "depth")
    return prepare_row(ctx, "city", root / "depth")


@case("source trees", "a split too short for one video")
def _(ctx):
    root = city(ctx)
    for i in (2, 3):
        for m in ("rgb", "depth"):
            frame(root, m, index=i).unlink()
    return prepare_row(ctx, "city", "the val split", "datasets.city.source.video_frames")


@case("source trees", "a frame of another size")
def _(ctx):
    from tests.data.source_trees import rgb_frame, write_rgb

    root = city(ctx)
    write_rgb(frame(root, "rgb"), rgb_frame(2, (20, 24)))
    return prepare_row(ctx, "city", frame(root, "rgb"))


@case("source trees", "modalities of different sizes")
def _(ctx):
    import cv2

    root = city(ctx)
    for i in range(4):
        cv2.imwrite(str(frame(root, "depth", index=i)), np.full((8, 12), 500, np.uint16))
    return prepare_row(ctx, "city", frame(root, "depth", index=0))


@case("source trees", "an 8-bit file for a 16-bit value_range")
def _(ctx):
    import cv2

    root = city(ctx)
    cv2.imwrite(str(frame(root, "depth")), np.full((16, 24), 200, np.uint8))
    return prepare_row(ctx, "city", frame(root, "depth"), "value_range [0, 25500]")


@case("source trees", "a truncated PNG")
def _(ctx):
    root = city(ctx)
    path = frame(root, "rgb")
    path.write_bytes(path.read_bytes()[:40])
    return prepare_row(ctx, "city", path)


def synthia(ctx: Ctx) -> Path:
    from tests.data.source_trees import write_synthia
    from tests.data.sources.test_synthia import SEQS, synthia_config

    root = ctx.tmp / "synthia"
    for seq in SEQS:
        write_synthia(root, seq, frames=4, size=(16, 24))
    ctx.with_dataset("synthia", synthia_config(root))
    return root / SEQS[1]


@case("source trees", "a SYNTHIA label folder is missing")
def _(ctx):
    import shutil

    from tests.data.source_trees import CAMERA

    seq = synthia(ctx)
    shutil.rmtree(seq / "GT")
    return prepare_row(ctx, "synthia", seq / "GT" / "LABELS" / CAMERA)


# --------------------------------------------------------------------------------------------
# videos: `prepare` of a video source (OpenDV-like; depth from pseudo-depth)

PSEUDO_DEPTH = dict(encoder="vits", input_size=518, batch_size=4, normalization="per_frame", precision="auto")


def pseudo_depth_config():
    from syncvp.config.depth import PseudoDepthConfig, TaskRunnerConfig

    return PseudoDepthConfig(**PSEUDO_DEPTH, task_runner=TaskRunnerConfig(kind="threads", workers=1, address=None))


def drive(ctx: Ctx, name: str = "drive.mp4", codec: str = "mp4v", **segments) -> Path:
    """Dataset `drive`: one 4 s video (10 fps, 64 x 96) cut into three splits."""
    from syncvp.config import VideoSplits
    from tests.data.source_trees import write_video
    from tests.data.sources.test_video import segment, video_source

    root = ctx.tmp / "videos"
    root.mkdir(exist_ok=True)
    write_video(root / name, frames=40, fps=10.0, codec=codec)
    splits = dict(
        train=(segment(name, end=2.0),), val=(segment(name, start=2.0, end=2.8),), test=(segment(name, start=2.8),)
    )
    splits.update(segments)
    ctx.with_dataset(
        "drive",
        DatasetConfig(
            source=video_source(root, splits=VideoSplits(**splits)),
            modalities=("rgb", "depth"),
            resolution=(16, 16),
            context_frames=1,
            future_frames=2,
            rollout_frames=3,
            pseudo_depth=pseudo_depth_config(),
            models=None,
        ),
    )
    return root / name


@case("videos", "a truncated mp4")
def _(ctx):
    path = drive(ctx)
    path.write_bytes(path.read_bytes()[:2000])
    return prepare_row(ctx, "drive", path)


@case("videos", "an avi that stops decoding")
def _(ctx):
    path = drive(ctx, "drive.avi", codec="MJPG")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return prepare_row(ctx, "drive", path, "decoding stopped at frame")


@case("videos", "a video of zero frames")
def _(ctx):
    import cv2

    path = drive(ctx)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 64))
    writer.release()
    return prepare_row(ctx, "drive", path)


@case("videos", "a segment past the end of the video")
def _(ctx):
    from tests.data.sources.test_video import segment

    path = drive(ctx, test=(segment("drive.mp4", start=30.0),))
    return prepare_row(ctx, "drive", path, "datasets.drive.source.splits.test[0]")


# --------------------------------------------------------------------------------------------
# netCDF months: `prepare` of an `era5` source (three months, 8 x 8 points, 4 hours a day)

ERA5_MONTHS = ("2021-01", "2021-02", "2021-03")


def era5_months(ctx: Ctx) -> dict[str, Path]:
    """Dataset `era5` and its three months as CDS sends them, where `download_era5` puts them."""
    from syncvp.data import era5
    from syncvp.data.synthetic_era5 import month_filename
    from tests.data.cds_standin import write_answer
    from tests.data.test_era5 import era5_source

    source = era5_source(months=ERA5_MONTHS)
    ctx.with_dataset(
        "era5",
        DatasetConfig(
            source=source,
            modalities=("t2m", "sp"),
            resolution=(8, 8),
            context_frames=1,
            future_frames=2,
            rollout_frames=3,
            pseudo_depth=None,
            models=None,
        ),
    )
    folder = ctx.paths.raw_dir("era5")
    folder.mkdir(parents=True)
    files = {}
    for month in ERA5_MONTHS:
        files[month] = folder / month_filename(month)
        write_answer(files[month], era5.month_request(source, month), seed=0, layout="new", wrap=None)
    return files


def rewrite(path: Path, change) -> Path:
    """Rewrite a month file with `change(ds)` applied (same encoding)."""
    import xarray as xr

    with xr.open_dataset(path, engine="netcdf4") as ds:
        ds = ds.load()
    ds = change(ds) or ds
    ds.to_netcdf(path, engine="netcdf4", format="NETCDF4")
    return path


def set_nan(*names: str, steps=slice(None)):
    """A `rewrite` change: the variables `names` missing (NaN) at the time steps `steps`."""

    def change(ds):
        for name in names:
            ds[name][steps] = np.nan

    return change


@case("netCDF months", "a truncated month")
def _(ctx):
    path = era5_months(ctx)["2021-02"]
    path.write_bytes(path.read_bytes()[:3000])
    return prepare_row(ctx, "era5", path, "cannot be read as netCDF")


@case("netCDF months", "an all-NaN sp, not reported as t2m")
def _(ctx):
    path = rewrite(era5_months(ctx)["2021-01"], set_nan("sp"))
    return prepare_row(ctx, "era5", path, "'sp' has no finite value")


@case("netCDF months", "time steps with no finite value")
def _(ctx):
    path = rewrite(era5_months(ctx)["2021-02"], set_nan("t2m", steps=slice(5, 9)))
    return prepare_row(ctx, "era5", path, "'t2m'", "4 of its 112 time steps", "2021-02-02T06")


@case("netCDF months", "a month on another grid")
def _(ctx):
    path = era5_months(ctx)["2021-03"]
    rewrite(path, lambda ds: ds.assign_coords(latitude=ds["latitude"] - 0.05))
    return prepare_row(ctx, "era5", path, "grid")


@case("netCDF months", "a month without a variable")
def _(ctx):
    path = rewrite(era5_months(ctx)["2021-02"], lambda ds: ds.drop_vars("sp"))
    return prepare_row(ctx, "era5", path, "lacks variable 'sp'")


@case("netCDF months", "a month whose data rotted on disk is fetched again")
def _(ctx):
    """Bytes in the data area flipped, the file's size, modification time and header unchanged:
    `download_era5`'s per-month cache must not keep it (the stand-in CDS client is handed to the
    real flow, which the stage entry point cannot do)."""
    from pipelines.download_era5 import download_era5
    from syncvp.data import era5
    from syncvp.data.synthetic_era5 import month_filename
    from tests.data.cds_standin import StandInCDS
    from tests.data.test_era5 import era5_source

    source, paths = era5_source(months=ERA5_MONTHS, retries=0), ctx.paths
    target = paths.raw_dir("era5") / month_filename("2021-02")
    download_era5("era5", source, paths, client_factory=StandInCDS())
    download_era5("era5", source, paths, client_factory=StandInCDS())  # every month now a cache hit
    good = target.read_bytes()
    stat = target.stat()
    rotten = bytearray(good)
    middle = len(rotten) // 2
    rotten[middle : middle + 256] = bytes(b ^ 0x5A for b in rotten[middle : middle + 256])
    target.write_bytes(bytes(rotten))
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    era5.check_month_header(target, era5.month_request(source, "2021-02"))  # the header still reads
    client = StandInCDS()

    def run() -> Outcome:
        with console() as out:
            download_era5("era5", source, paths, client_factory=client)
        return Outcome(0, out.getvalue())

    def check(outcome: Outcome) -> None:
        assert client.months() == ["2021-02"], "only the rotten month is fetched again"
        assert target.read_bytes() == good
        assert leftovers(target) == []

    return Row(run, names=(), code=0, check=check)


# --------------------------------------------------------------------------------------------
# weights: pretrained files named in params.yaml `weights` (Depth-Anything-V2 for `pseudo_depth`,
# I3D and LPIPS-AlexNet for `evaluate`, LPIPS-VGG16 for `train_autoencoder`)


def torch_file(path: Path, state: dict, how: str = "whole") -> Path:
    """A small torch file, whole or cut short (like a download that was interrupted)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def some_tensors() -> dict:
    import torch

    return {f"layer{i}.weight": torch.randn(64, 64) for i in range(4)}


def with_weights(ctx: Ctx, **files) -> None:
    ctx.params = dataclasses.replace(ctx.params, weights=dataclasses.replace(ctx.params.weights, **files))


def pseudo_depth_row(ctx: Ctx, state: dict | None, how: str = "whole", *names) -> Row:
    drive(ctx)
    path = ctx.tmp / "weights" / "depth_anything_v2_vits.pth"
    if state is not None:
        torch_file(path, state, how)
    with_weights(ctx, depth_anything_vits=path)
    return Row(
        ctx.stage("pseudo_depth", "drive"), names=(str(path), *names), outputs=ctx.outputs("pseudo_depth", "drive")
    )


@case("weights", "Depth-Anything-V2 weights missing")
def _(ctx):
    return pseudo_depth_row(ctx, None, "whole", "weights.depth_anything_vits")


@case("weights", "Depth-Anything-V2 weights truncated")
def _(ctx):
    return pseudo_depth_row(ctx, some_tensors(), "truncated", "truncated or foreign")


@case("weights", "Depth-Anything-V2 weights of another network")
def _(ctx):
    return pseudo_depth_row(ctx, some_tensors(), "whole", "not a Depth-Anything-V2 checkpoint")


def evaluation(ctx: Ctx, metrics: tuple[str, ...], **weights) -> Params:
    """The 8 px test store and tiny random models of tests/evaluation, and an `evaluate` section
    computing `metrics` with the given weights files."""
    from tests.evaluation.conftest import evaluate_config, write_models, write_test_store
    from tests.prediction.conftest import SAMPLING

    ds = dataclasses.replace(
        ctx.params.datasets["synthetic"], resolution=(8, 8), context_frames=2, future_frames=3, rollout_frames=5
    )
    write_test_store(ctx.paths)
    write_models(ctx.paths)
    evaluate = evaluate_config(
        conditions=("all",), videos=2, trajectories=1, reduce="best", protocols=("standard",), metrics=metrics
    )
    ctx.params = with_pipeline(
        ctx.params,
        datasets={**ctx.params.datasets, "synthetic": ds},
        sampling=SAMPLING,
        evaluate=evaluate,
        run=dataclasses.replace(ctx.params.run, device="cpu", threads=1),
        weights=dataclasses.replace(ctx.params.weights, **weights),
    )
    return ctx.params


def evaluate_row(ctx: Ctx, *names) -> Row:
    return Row(
        ctx.stage("evaluate", "synthetic"),
        names=tuple(str(n) for n in names),
        outputs=ctx.outputs("evaluate", "synthetic"),
    )


@case("weights", "I3D weights truncated")
def _(ctx):
    path = torch_file(ctx.tmp / "weights" / "i3d_pretrained_400.pt", some_tensors(), "truncated")
    evaluation(ctx, ("fvd", "ssim"), i3d=path)
    return evaluate_row(ctx, path, "truncated or foreign", "weights.i3d")


@case("weights", "I3D weights of another network")
def _(ctx):
    path = torch_file(ctx.tmp / "weights" / "i3d_pretrained_400.pt", some_tensors())
    evaluation(ctx, ("fvd", "ssim"), i3d=path)
    return evaluate_row(ctx, path, "is not i3d_pretrained_400.pt")


@case("weights", "LPIPS AlexNet weights truncated")
def _(ctx):
    path = torch_file(ctx.tmp / "weights" / "alexnet-owt-7be5be79.pth", some_tensors(), "truncated")
    evaluation(ctx, ("lpips", "ssim"), lpips_alexnet=path)
    return evaluate_row(ctx, path, "truncated or foreign", "weights.lpips_alexnet")


@case("weights", "LPIPS AlexNet weights of another network")
def _(ctx):
    path = torch_file(ctx.tmp / "weights" / "alexnet-owt-7be5be79.pth", some_tensors())
    evaluation(ctx, ("lpips", "ssim"), lpips_alexnet=path)
    return evaluate_row(ctx, path, "not a torchvision AlexNet state dict")


def autoencoder_row(ctx: Ctx, state: dict, how: str, *names) -> Row:
    from tests.training.diffusion_setup import tiny_diffusion_params
    from tests.training.stores import write_tiny_stores

    path = torch_file(ctx.tmp / "weights" / "vgg16-397923af.pth", state, how)
    p = tiny_diffusion_params(ctx.params)
    train = dataclasses.replace(
        p.train_autoencoder, steps=2, batch_size=2, eval_every=2, eval_clips=2, checkpoint_every=2, log_every=2
    )
    ctx.params = dataclasses.replace(p, train_autoencoder=train)
    with_weights(ctx, lpips_vgg16=path)
    write_tiny_stores(ctx.paths)
    unit = "synthetic-rgb-future"
    return Row(
        ctx.stage("train_autoencoder", unit), names=(str(path), *names), outputs=ctx.outputs("train_autoencoder", unit)
    )


@case("weights", "LPIPS VGG16 weights truncated")
def _(ctx):
    return autoencoder_row(ctx, some_tensors(), "truncated", "truncated or foreign", "weights.lpips_vgg16")


@case("weights", "LPIPS VGG16 weights of another network")
def _(ctx):
    return autoencoder_row(ctx, some_tensors(), "whole", "not a torchvision VGG16 state dict", "weights.lpips_vgg16")


# --------------------------------------------------------------------------------------------
# model files: what one stage writes and the next one reads


def diffusion_setup(ctx: Ctx) -> Params:
    """Tiny stores, random autoencoders and configs for the diffusion stages (tests/training),
    one training step."""
    from tests.training.diffusion_setup import setup, tiny_diffusion_params

    one_step = tiny_diffusion_params(ctx.params, steps=1, checkpoint_every=1, log_every=1, loss_curve_every=1)
    ctx.params = dataclasses.replace(setup(ctx.params), train_single=one_step.train_single)
    return ctx.params


@case("model files", "a truncated autoencoder.pt")
def _(ctx):
    p = diffusion_setup(ctx)
    path = p.paths.model_dir("synthetic-rgb-future") / "autoencoder.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return Row(
        ctx.stage("train_single", "synthetic-rgb"),
        outputs=ctx.outputs("train_single", "synthetic-rgb"),
        names=(str(path), "dvc repro train_autoencoder@synthetic-rgb-future"),
    )


@case("model files", "a foreign diffusion.pt")
def _(ctx):
    p = diffusion_setup(ctx)
    for m in ("rgb", "depth"):
        torch_file(p.paths.model_dir(f"synthetic-{m}") / "diffusion.pt", {"x": 1})
    path = p.paths.model_dir("synthetic-rgb") / "diffusion.pt"
    return Row(
        ctx.stage("train_joint", "synthetic"),
        outputs=ctx.outputs("train_joint", "synthetic"),
        names=(str(path), "not a syncvp-diffusion file", "dvc repro train_single@synthetic-rgb"),
    )


@case("model files", "a truncated joint.pt")
def _(ctx):
    evaluation(ctx, ("ssim",))
    path = ctx.paths.models / "synthetic" / "joint.pt"
    path.write_bytes(path.read_bytes()[:3000])
    return evaluate_row(ctx, path, "dvc repro train_joint@synthetic")


@case("model files", "a directory where autoencoder.pt belongs")
def _(ctx):
    evaluation(ctx, ("ssim",))
    path = ctx.paths.model_dir("synthetic-depth-future") / "autoencoder.pt"
    path.unlink()
    path.mkdir()
    (path / "autoencoder.pt").write_bytes(b"")
    return evaluate_row(ctx, path, "is a directory", "dvc repro train_autoencoder@synthetic-depth-future")


def fine_tune(ctx: Ctx, dataset: str) -> Params:
    """The diffusion setup with `train_single` starting from `<tmp>/source_models`, dataset `dataset`."""
    from syncvp.config.init_from import InitFrom

    p = diffusion_setup(ctx)
    source = InitFrom(models=ctx.tmp / "source_models", dataset=dataset)
    ctx.params = dataclasses.replace(
        p, train_single=dataclasses.replace(p.train_single, init="checkpoint", init_from=source)
    )
    return ctx.params


@case("model files", "init checkpoint naming a file that is not there")
def _(ctx):
    fine_tune(ctx, "cityscapes")
    path = ctx.tmp / "source_models" / "cityscapes-rgb" / "diffusion.pt"
    return Row(
        ctx.stage("train_single", "synthetic-rgb"),
        outputs=ctx.outputs("train_single", "synthetic-rgb"),
        names=(str(path), "train_single.init_from"),
    )


@case("model files", "init checkpoint of another architecture")
def _(ctx):
    from syncvp.models.diffusion_file import save_diffusion_model
    from syncvp.models.factory import build_unet
    from tests.training.test_diffusion_training import plan_single

    p = fine_tune(ctx, "cityscapes")
    job = plan_single(
        dataclasses.replace(p, train_single=dataclasses.replace(p.train_single, init="scratch", init_from=None))
    )
    wider = dataclasses.replace(p.unet, model_channels=2 * p.unet.model_channels)
    path = ctx.tmp / "source_models" / "cityscapes-rgb" / "diffusion.pt"
    shapes = job.model_shapes
    save_diffusion_model(path, build_unet(wider, *shapes["rgb"]), shapes=shapes, unet=wider, diffusion=p.diffusion)
    return Row(
        ctx.stage("train_single", "synthetic-rgb"),
        outputs=ctx.outputs("train_single", "synthetic-rgb"),
        names=(str(path), f"unet.model_channels {wider.model_channels} (now {p.unet.model_channels})"),
    )


def latent_cache(ctx: Ctx) -> Path:
    """The rgb latent cache of unit synthetic-rgb, as a finished precompute wrote it."""
    import torch

    from syncvp.training import diffusion_train
    from syncvp.training.diffusion_latents import precompute
    from tests.training.test_diffusion_training import plan_single

    job = plan_single(diffusion_setup(ctx))
    return precompute(job, diffusion_train.load_encoders(job, torch.device("cpu")), torch.device("cpu"))["rgb"]


@case("model files", "a latent cache cut short is encoded again")
def _(ctx):
    import torch

    path = latent_cache(ctx)
    good = torch.load(path, weights_only=True)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    def check(outcome: Outcome) -> None:
        assert f"{path} is not a latent cache" in outcome.text and "encoding the training windows again" in outcome.text
        assert torch.equal(torch.load(path, weights_only=True)["future"], good["future"])
        assert (ctx.paths.model_dir("synthetic-rgb") / "diffusion.pt").is_file()

    return Row(ctx.stage("train_single", "synthetic-rgb"), names=(), code=0, check=check)


# --------------------------------------------------------------------------------------------
# predict: `python -m syncvp predict` on a folder of frames


def predict_row(ctx: Ctx, change=None, *names, frames: str = "2", **overrides) -> Row:
    from tests.evaluation.conftest import write_models
    from tests.prediction.test_predict_cli import _frames

    paths = ctx.paths
    write_models(paths)
    inputs = _frames(ctx.tmp / "in")
    args = {
        "--params": str(ctx.params_file()),
        "--model": str(paths.models / "synthetic" / "joint.pt"),
        "--input": str(inputs),
        "--out": str(ctx.tmp / "out"),
        "--frames": frames,
    }
    args.update(overrides)
    aes = [
        f"{m}={paths.model_dir(f'synthetic-{m}-context') / 'autoencoder.pt'},"
        f"{paths.model_dir(f'synthetic-{m}-future') / 'autoencoder.pt'}"
        for m in ("rgb", "depth")
    ]
    argv = [a for k, v in args.items() if v is not None for a in (k, v)] + ["--autoencoders", *aes]
    if change is not None:
        change(ctx, inputs)
    return Row(ctx.predict(*argv), names=tuple(str(n) for n in names), outputs=(ctx.tmp / "out",), code=2)


@case("predict", "--frames 0")
def _(ctx):
    return predict_row(ctx, None, "--frames", "must be >= 1", frames="0")


@case("predict", "a negative --frames")
def _(ctx):
    return predict_row(ctx, None, "--frames", "must be >= 1", frames="-3")


@case("predict", "--trajectories 0")
def _(ctx):
    return predict_row(ctx, None, "--trajectories", "must be >= 1", **{"--trajectories": "0"})


@case("predict", "a frame of the wrong size")
def _(ctx):
    import cv2

    def change(ctx, inputs):
        cv2.imwrite(str(inputs / "rgb" / "009.png"), np.zeros((12, 8, 3), np.uint8))

    return predict_row(ctx, change, ctx.tmp / "in" / "rgb" / "009.png", "12x8")


@case("predict", "the model file is missing")
def _(ctx):
    path = ctx.tmp / "models" / "elsewhere" / "joint.pt"
    return predict_row(ctx, None, path, "does not exist", **{"--model": str(path)})


@case("predict", "a truncated autoencoder file")
def _(ctx):
    def change(ctx, inputs):
        path = ctx.paths.model_dir("synthetic-depth-future") / "autoencoder.pt"
        path.write_bytes(path.read_bytes()[:2000])

    return predict_row(
        ctx,
        change,
        ctx.paths.model_dir("synthetic-depth-future") / "autoencoder.pt",
        "dvc repro train_autoencoder@synthetic-depth-future",
    )


@case("predict", "a modality folder is missing")
def _(ctx):
    import shutil

    def change(ctx, inputs):
        shutil.rmtree(inputs / "depth")

    return predict_row(ctx, change, ctx.tmp / "in" / "depth", "is missing")


@case("predict", "--present names an unknown modality")
def _(ctx):
    return predict_row(ctx, None, "'semantic'", "is not a modality of the model", **{"--present": "semantic"})


@case("predict", "an unknown --dataset")
def _(ctx):
    return predict_row(
        ctx, None, "--dataset 'cityscapes'", "params.yaml", **{"--model": None, "--dataset": "cityscapes"}
    )


# --------------------------------------------------------------------------------------------
# The test


def _ids():
    return [pytest.param(cat, name, id=f"{cat}: {name}") for cat, rows in CATALOGUE.items() for name in rows]


@pytest.mark.parametrize("category, name", _ids())
def test_bad_input(category, name, tiny_params, tmp_path, prefect_harness):
    ctx = Ctx(tmp_path, tiny_params)
    row = CATALOGUE[category][name](ctx)
    outcome = row.run()
    text = outcome.text
    assert outcome.code == row.code, text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    if row.code == 0:
        assert errors == [], text
    else:
        assert len(errors) == 1, text
        for name_ in row.names:
            assert name_ in errors[0], f"{name_!r} not in {errors[0]!r}"
        if row.code == 1 and outcome.log is not None:
            assert f"(traceback in {outcome.log}; --debug prints it)" in errors[0]
            assert "Traceback (most recent call last)" in outcome.log.read_text()
    for path in row.outputs:
        assert not path.exists(), f"{path} was left behind"
        assert leftovers(path) == [], f"temporary files left beside {path}"
    if row.check is not None:
        row.check(outcome)


def test_the_catalogue_covers_every_kind_of_input():
    counts = {cat: len(rows) for cat, rows in CATALOGUE.items()}
    assert list(counts) == ["params", "source trees", "videos", "netCDF months", "weights", "model files", "predict"]
    assert min(counts.values()) >= 4 and sum(counts.values()) >= 40, counts
