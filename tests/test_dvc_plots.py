"""dvc.yaml's plots draw what the code writes: every top-level plot names a file the stages write
for params.yaml, and its y columns are columns the code writes there (the code's own naming);
every per-frame evaluation curve is drawn with the model next to the references; every stage-level
training plot's title names its unit and draws a curve the unit's DVCLive folder holds (one
`dvclive/plots/metrics/<name>.tsv`, columns step and <name>, per curve the code logs)."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest

from syncvp.config import parse_unit
from syncvp.evaluation.outputs import MISSING, PLOT_SERIES, plot_name, write_plots
from syncvp.evaluation.plan import references_for, settings_for
from syncvp.metrics.plan import IMAGE_METRICS, PAIR_METRICS, plan_metrics
from syncvp.metrics.report import Row
from syncvp.training import autoencoder_train
from syncvp.training.context_probe import probe_column, probe_timesteps
from syncvp.training.diffusion_train import loss_columns

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dvc_plots():
    """(top-level plots {path relative to the repo: props}, stage-level plots {path: props}), as DVC
    resolves dvc.yaml's `${...}` templates."""
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        (defs,) = repo.index._plots.values()
        top = {}
        for d in defs:
            ((path, props),) = d.items()
            top[path if isinstance(props.get("y"), dict) else Path(path)] = props  # a plot id joins files
        stage = {
            Path(o.fs_path).relative_to(REPO): (s.name, o.plot) for s in repo.index.stages for o in s.outs if o.plot
        }
    return top, stage


def _header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return next(csv.reader(fh, delimiter="\t"))


def _curve_files(repo_params, dataset: str, tmp_path: Path) -> dict[Path, list[str]]:
    """{plots/<file> under the dataset's evaluation folder: its columns}, as `write_plots` writes
    them for params.yaml's evaluate section (one curve point per setting and file)."""
    evaluate, config = repo_params.evaluate, repo_params.datasets[dataset]
    assert config.source.kind == "synthetic_video"  # its modalities are all images
    available = plan_metrics(evaluate.metrics, repo_params.weights).available
    per_frame = [m for m in available if m in IMAGE_METRICS and m != "fvd"]  # FVD has no per-frame curve
    curves = [(m, metric) for m in config.modalities for metric in per_frame]
    pairs = len(config.modalities) > 1 and "alignment" in available
    if pairs:
        curves += [(f"{config.modalities[0]}+{b}", "alignment") for b in config.modalities[1:]]
    settings = settings_for(evaluate, config.modalities)
    labels = [s.label for s in (*settings, *references_for(evaluate, settings, pairs))]
    rows = [
        Row(dataset, label, mode, modality, metric, "best", 1.0, frame=1)
        for label in labels
        for mode in evaluate.protocols
        for modality, metric in curves
    ]
    write_plots(tmp_path, rows)
    out = repo_params.paths.evaluation(dataset).plots
    return {out / f.name: _header(f) for f in tmp_path.iterdir()}


def test_evaluation_plots_draw_the_model_next_to_the_references(repo_params, dvc_plots, tmp_path):
    top, stage = dvc_plots
    written = {}
    for dataset in repo_params.pipeline.joint:
        written.update(_curve_files(repo_params, dataset, tmp_path / dataset))
    drawn = {
        p: props
        for p, props in top.items()
        if isinstance(p, Path) and p.parent.name == "plots" and p.parent.parent.parent == Path(repo_params.paths.eval)
    }
    assert set(drawn) == set(written), "dvc.yaml top-level plots != the curve files evaluate writes for params.yaml"
    for path, props in drawn.items():
        assert props["x"] == "frame" and props["x"] in written[path]
        assert list(props["y"]) == list(PLOT_SERIES), path
        assert set(props["y"]) <= set(written[path]), path
        dataset = path.parent.parent.name
        mode, modality, metric = path.stem.split("-")
        assert path.name == plot_name(mode, modality, metric)
        title = props["title"]
        assert title.startswith(f"{dataset}, {mode} mode, {modality}: "), title
        assert metric.lower() in title.lower() or metric in PAIR_METRICS, title
        assert props["x_label"] and props["y_label"]
    assert not set(drawn) & set(stage), "a file drawn twice (top-level and stage plots)"


def test_training_plots_name_their_unit_and_draw_every_column(repo_params, dvc_plots):
    top, stage = dvc_plots
    paths, pipeline = repo_params.paths, repo_params.pipeline
    times = probe_timesteps(repo_params.diffusion.timesteps)
    for unit in [*pipeline.single, *pipeline.joint]:
        joint = unit in pipeline.joint
        mods = repo_params.datasets[unit].modalities if joint else (parse_unit(unit)[1],)
        files = paths.joint(unit) if joint else paths.single(*parse_unit(unit)[:2])
        probe = top[files.plot("context")]
        want = {probe_column(t, c, m if joint else None) for t in times for c in (True, False) for m in mods}
        assert set(probe["y"]) == want and probe["title"].startswith(f"{unit}: ")
        if joint:  # one plot of the loss and every loss_<m>, each from its DVCLive file
            loss = top[f"{unit}-joint-loss"]
            columns = loss_columns(SimpleNamespace(kind="joint", modalities=mods))
            assert loss["y"] == {str(files.live_plot(c)): c for c in columns}
            assert loss["x"] == "step" and loss["title"].startswith(f"{unit}: ") and loss["x_label"] and loss["y_label"]
    for path, (name, props) in stage.items():
        unit = name.partition("@")[2]
        assert props["title"].startswith(f"{unit}: "), (path, props)
        assert props["x"] == "step" and props["y"] == path.stem and props["x_label"] and props["y_label"]
        assert path.parent.name == "metrics" and path.parent.parent.parent.name == "dvclive", path
    units = [*pipeline.autoencoders, *pipeline.single]
    assert {n.partition("@")[2] for n, _ in stage.values()} == set(units)
    # every curve the code logs is drawn, and only those
    drawn = {path for path in stage}
    logged = {
        *(
            paths.autoencoder(*parse_unit(u)).live_plot(c)
            for u in pipeline.autoencoders
            for c in autoencoder_train.CURVES
        ),
        *(paths.single(*parse_unit(u)[:2]).live_plot("loss") for u in pipeline.single),
    }
    assert drawn == logged


def test_write_plots_pads_the_drawn_columns(tmp_path):
    rows = [
        Row("d", "all", "standard", "rgb", "psnr", "best", 20.0, frame=1),
        Row("d", "all", "standard", "rgb", "psnr", "best", 18.5, frame=2),
        Row("d", "all", "standard", "rgb", "psnr", "mean", 17.0, frame=1),  # best-of-N wins
        Row("d", "copy_last", "standard", "rgb", "psnr", "best", 19.0, frame=1),
        Row("d", "depth", "standard", "rgb", "psnr", "best", 15.0, frame=2),
    ]
    write_plots(tmp_path, rows)
    (path,) = tmp_path.iterdir()
    assert path.name == "standard-rgb-psnr.tsv"
    with open(path, newline="") as fh:
        table = list(csv.reader(fh, delimiter="\t"))
    assert table[0] == ["frame", "all", "copy_last", "depth", "single-all", "flow", "autoencoder"]
    assert table[1] == ["1", "20.0", "19.0", MISSING, MISSING, MISSING, MISSING]
    assert table[2] == ["2", "18.5", MISSING, "15.0", MISSING, MISSING, MISSING]
    assert float(MISSING) != float(MISSING)  # NaN: Vega-Lite drops it from the line instead of drawing 0
