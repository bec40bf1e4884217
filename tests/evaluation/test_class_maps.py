"""Class maps in evaluation: the synthetic generator's `semantic` modality (rgb + semantic), decoded
to the nearest class, scored with pixel accuracy and mean IoU next to SSIM, drawn in the palette;
and `score_batch` on a hand-made case."""

from __future__ import annotations

import dataclasses
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from syncvp.data import store
from syncvp.data.sources import synthetic_video as synthetic_source
from syncvp.data.synthetic_video import CLASSES, render_split
from syncvp.evaluation import BASELINE, evaluate, plan_evaluation
from syncvp.figures import PALETTE
from syncvp.metrics.classes import ClassCoding, mean_iou, pixel_accuracy
from syncvp.metrics.protocol import STANDARD, score_batch
from tests.evaluation.conftest import NO_WEIGHTS, SIZE, evaluate_config, write_models


def test_score_batch_decodes_a_class_map_to_the_nearest_class_before_every_metric():
    """3 classes (levels 0, 128, 255); one video of 1 context + 2 predicted 1x4 frames."""
    coding = ClassCoding.gray(("a", "b", "c"))
    gt = torch.tensor([[0, 128, 255, 255], [0, 128, 255, 255], [0, 0, 255, 255]], dtype=torch.uint8)
    gt = gt.reshape(1, 1, 3, 1, 4)
    # predicted gray (midpoints 64 and 191.5): 60 -> a, 70 -> b, 200 -> c, 195 -> c | 130 -> b, 10 -> a, 255 -> c, 100 -> b
    pred = torch.tensor([[60, 70, 200, 195], [130, 10, 255, 100]], dtype=torch.uint8).reshape(1, 1, 2, 1, 4)
    result = score_batch(
        {"sem": gt},
        [{"sem": pred}],
        context_frames=1,
        metrics={"sem": ("accuracy", "miou", "l2")},
        protocols=(STANDARD,),
        classes={"sem": coding},
    )
    acc = result.values[("standard", "sem", "accuracy")]
    # frame 1: truth a b c c, decoded a b c c -> 4/4; frame 2: truth a a c c, decoded b a c b -> 2/4
    np.testing.assert_allclose(acc.frame[0, 0], [1.0, 0.5])
    np.testing.assert_allclose(acc.video[0, 0], 6 / 8)
    miou = result.values[("standard", "sem", "miou")]
    # frame 2 (truth a a c c, decoded b a c b): a inter 1 union 2; b inter 0 union 2; c inter 1 union 2
    np.testing.assert_allclose(miou.frame[0, 0], [1.0, (1 / 2 + 0 + 1 / 2) / 3])
    # the video pools both frames: a inter 2 union 3, b inter 1 union 3, c inter 3 union 4
    np.testing.assert_allclose(miou.video[0, 0], (2 / 3 + 1 / 3 + 3 / 4) / 3)
    # L2 scores the decoded levels: frame 2 differs by 128 (b for a) and 127 (b for c) in two of 4 pixels
    l2 = result.values[("standard", "sem", "l2")]
    assert l2.frame[0, 0, 0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"sem: metrics \['accuracy'\] do not apply to an image modality"):
        score_batch(
            {"sem": gt}, [{"sem": pred}], context_frames=1, metrics={"sem": ("accuracy",)}, protocols=(STANDARD,)
        )


@pytest.fixture
def semantic(tiny_params):
    """The tiny synthetic dataset with modalities rgb + semantic at 8 px: rendered, prepared, and
    random models in the stages' layout."""
    base = tiny_params.datasets["synthetic"]
    ds = dataclasses.replace(
        base,
        modalities=("rgb", "semantic"),
        resolution=(SIZE, SIZE),
        context_frames=2,
        future_frames=3,
        rollout_frames=5,
    )
    paths = tiny_params.paths
    raw = paths.raw_dir("synthetic")
    raw.mkdir(parents=True, exist_ok=True)
    store.write_store(raw / "test.nc", render_split("synthetic", ds.source, "test"))
    prepared = synthetic_source.prepare_split("synthetic", ds, paths, "test", {})
    store.write_store(paths.store("synthetic", "test"), prepared)
    write_models(paths, channels={"rgb": 3, "semantic": 1})
    return ds, paths, prepared


def test_synthetic_class_map_is_scored_with_accuracy_and_miou_next_to_ssim(semantic, tiny_params):
    ds, paths, prepared = semantic
    assert prepared["semantic"].attrs["encoding"] == "class_gray"
    config = evaluate_config(conditions=("all",), metrics=("ssim", "accuracy", "miou"), samples=1)
    plan = plan_evaluation("synthetic", ds, config, tiny_params.sampling, NO_WEIGHTS, paths)
    assert plan.classes == {"semantic": CLASSES}
    assert plan.metrics_for("semantic") == ("ssim", "accuracy", "miou") and plan.metrics_for("rgb") == ("ssim",)
    scores = json.loads(evaluate(plan).read_text())["synthetic"]
    for setting in ("all", BASELINE):
        leaf = scores[setting]["standard"]
        assert set(leaf["rgb"]) <= {"ssim", "ssim_mean"}
        assert {"ssim", "accuracy", "miou"} <= set(leaf["semantic"])
        assert 0 <= leaf["semantic"]["accuracy"] <= 1 and 0 <= leaf["semantic"]["miou"] <= 1
    # copy-last by hand: the last context frame's classes held over the 5 predicted frames
    sem = prepared["semantic"].values[:, : ds.context_frames + ds.rollout_frames]
    coding = ClassCoding.gray(CLASSES)
    ids = coding.to_ids(sem.astype(np.float64))
    truth, held = ids[:, ds.context_frames :], np.repeat(ids[:, ds.context_frames - 1 : ds.context_frames], 5, axis=1)
    expect = np.mean([pixel_accuracy(held[v], truth[v]) for v in range(len(ids))])
    assert scores[BASELINE]["standard"]["semantic"]["accuracy"] == pytest.approx(expect)
    expect = np.mean([mean_iou(held[v], truth[v], len(CLASSES)) for v in range(len(ids))])
    assert scores[BASELINE]["standard"]["semantic"]["miou"] == pytest.approx(expect)
    # the sample grid draws the class map in the palette: its tiles hold palette colours only
    grid = iio.imread(plan.out_dir / "samples" / "all.png")
    colours = {tuple(c) for c in grid.reshape(-1, grid.shape[-1])[:, :3]}
    assert colours & {tuple(c) for c in PALETTE[: len(CLASSES)]}
    compare = (plan.out_dir / "tables" / "compare.md").read_text()
    assert "| accuracy ↑ |" in compare and "| miou ↑ |" in compare
