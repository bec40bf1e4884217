"""What the evaluation draws: labelled sample grids (the unobserved context blank, an observed
one equal to the ground truth), report.html (self-contained, the table's numbers, written
atomically before metrics.json) and `scripts/sample_figure.py` on the new grids."""

from __future__ import annotations

import csv
import json
import re

import imageio.v3 as iio
import numpy as np
import pytest

from scripts import sample_figure
from syncvp import figures
from syncvp.config.layout import EvaluationFiles
from syncvp.evaluation import BASELINE, evaluate, outputs, plan_evaluation
from syncvp.evaluation.outputs import frame_labels
from syncvp.evaluation.report_page import markdown_to_html, read_curves
from tests.evaluation.conftest import NO_WEIGHTS, SIZE, evaluate_config


def _plan(setup, **changes):
    ds, sampling, paths = setup
    return plan_evaluation("synthetic", ds, evaluate_config(**changes), sampling, NO_WEIGHTS, paths)


def _tile(image, lay, i, j):
    y, x = lay.row_y(i), lay.col_x(j)
    return image[y : y + lay.tile_h, x : x + lay.tile_w, :3]


def test_frame_labels():
    assert frame_labels(2, 5) == ["-1", "0", "+1", "+2", "+3"] and frame_labels(1, 2) == ["0", "+1"]


def test_markdown_tables_become_html_tables():
    md = "### t\n\n| a | b |\n| --- | --- |\n| x → y | 0.642 / 0.641 |\n\ntext <b>\n"
    page = markdown_to_html(md)
    assert page == (
        "<h4>t</h4>\n<table><tr><th>a</th><th>b</th></tr><tr><td>x → y</td><td>0.642 / 0.641</td></tr></table>\n"
        "<p>text &lt;b&gt;</p>"
    )


def test_curves_are_read_back_from_the_tsv_files(tmp_path):
    (tmp_path / "standard-rgb-ssim.tsv").write_text("frame\tall\tcopy_last\n1\t0.5\t0.25\n2\t\t0.125\n")
    assert read_curves(tmp_path) == {
        "standard": {"rgb ssim": {"all": [(1, 0.5)], "copy_last": [(1, 0.25), (2, 0.125)]}}
    }


def test_grids_report_and_sample_figure(setup, tmp_path):
    plan = _plan(setup)  # settings all, depth (only depth observed) and copy_last; 2 sample videos
    metrics = json.loads(evaluate(plan).read_text())["synthetic"]
    out = EvaluationFiles(plan.out_dir)
    scale, tc, frames = figures.display_scale(SIZE), plan.config.context_frames, plan.frames
    tile = (SIZE * scale, SIZE * scale)
    for label in ("all", "depth", BASELINE):
        image = iio.imread(out.samples / f"{label}.png")
        lay = figures.GridLayout.of_image(image.shape, tile, frames, tc)
        assert (
            lay.rows == 2 * 2 * 2 and lay.shape == image.shape[:2] and not lay.bar
        )  # videos x modalities x (GT, pred)
        assert (image[lay.top :, lay.marker_x + lay.pad, :3] == figures.MARKER_RGB).all()
        for v in range(2):
            for k, m in enumerate(plan.modalities):
                gt, pred = 4 * v + 2 * k, 4 * v + 2 * k + 1
                for j in range(tc):
                    if label == "depth" and m == "rgb":  # not observed: blank, not the GT context
                        assert (_tile(image, lay, pred, j)[:3] == figures.BLANK_RGB).all()
                        assert not (_tile(image, lay, gt, j) == figures.BLANK_RGB).all()
                    else:  # observed: the context as it is
                        assert np.array_equal(_tile(image, lay, pred, j), _tile(image, lay, gt, j))
        gif = iio.imread(out.samples / f"{label}.gif")
        assert gif.shape[0] == frames and gif.shape[1:3] == figures.GridLayout(2 * 2, 2, *tile).shape
    # report.html: self-contained, the table's numbers, the GIFs and the params
    page = out.report.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page, re.I)
    assert page.count('src="data:image/gif;base64,') == 3 and 'src="data:image/png;base64,' in page
    for line in out.table("compare.md").read_text().splitlines():
        if line.startswith("| all → rgb | ssim"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            assert "".join(f"<td>{c}</td>" for c in cells) in page
    ssim = metrics[BASELINE]["standard"]["rgb"]["ssim"]
    assert f"<td>{ssim:.3f}</td>" in page  # copy-last's rgb SSIM, as compare.md rounds it
    assert "context_frames: 2" in page and "samples: 2" in page and "method:" in page
    with open(out.plots / "standard-rgb-ssim.tsv") as fh:
        # the evaluated settings, then the dvc.yaml-drawn series that were not evaluated ("nan")
        assert next(csv.reader(fh, delimiter="\t"))[1:] == [
            "all",
            "depth",
            BASELINE,
            "single-all",
            "flow",
            "autoencoder",
        ]
    # scripts/sample_figure.py stacks the rows of the grids: header + per video, modality: GT + joint + copy-last
    fig = iio.imread(
        sample_figure.figure(plan.out_dir, plan.modalities, (SIZE, SIZE), tc, frames, 1, tmp_path / "fig.png")
    )
    sources = 2  # joint model (all) and copy-last; no single-all or flow here
    assert fig.shape[0] == 22 + (lay.head_h + 2) + 2 * (1 + sources) * (lay.tile_h + 2)
    assert fig.shape[1] == sample_figure.NAME_W + lay.shape[1]


def test_report_is_written_atomically_before_metrics(setup, monkeypatch):
    plan = _plan(setup, conditions=("all",))
    out = EvaluationFiles(plan.out_dir)

    def broken(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(outputs, "report_html", broken)
    with pytest.raises(RuntimeError, match="drawing failed"):
        evaluate(plan)
    assert not out.report.exists() and not out.metrics.exists()
    assert not [p for p in plan.out_dir.iterdir() if p.name.startswith(("report", ".report"))]
    monkeypatch.undo()
    evaluate(plan)
    assert out.report.read_text().startswith("<!DOCTYPE html>") and out.metrics.is_file()
