"""Cross-modal alignment: hand-computed frames, the chance level, scale invariance, NaN for frames without edges,
and its reduction (best of N = highest value, NaN ignored by means) in both modes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from syncvp.metrics.alignment import alignment, alignment_frames, alignment_of_edges, gradient_magnitude
from syncvp.metrics.protocol import PAPER, STANDARD, score_batch
from syncvp.metrics.report import summarise


def step(column: int, low: int = 0, high: int = 200, channels: int = 1, size: int = 8) -> torch.Tensor:
    """One uint8 frame [1, C, size, size]: `low` left of `column`, `high` from it on (a vertical step edge)."""
    x = torch.full((1, channels, size, size), low, dtype=torch.uint8)
    x[..., column:] = high
    return x


def test_sobel_of_a_step_is_four_times_its_height_on_the_two_columns_beside_it():
    g = gradient_magnitude(step(4, high=10))[0]
    assert torch.equal(g[:, 3], torch.full((8,), 40.0, dtype=torch.float64))
    assert torch.equal(g[:, 4], torch.full((8,), 40.0, dtype=torch.float64))
    assert g[:, [0, 1, 2, 5, 6, 7]].abs().max() == 0  # replicated borders: no border edges


def test_hand_computed_frames():
    rgb = step(4, channels=3)
    # rgb edges: columns 3, 4; within 1 px of them: columns 2-5, half of the 8 x 8 frame (chance 0.5),
    # so a hit rate h scores (h - 0.5) / 0.5
    # the same edge: all 16 depth edge pixels (columns 3, 4) lie on rgb edge pixels: h = 1
    assert alignment_frames(rgb, step(4)).item() == 1.0
    # depth edge 3 px to the right (columns 6, 7): 2 px from the nearest rgb edge column: h = 0
    assert alignment_frames(rgb, step(7)).item() == -1.0
    # 2 px to the right (columns 5, 6): column 5 is within 1 px of column 4, column 6 is not: h = 0.5,
    # what edges placed at random would score
    assert alignment_frames(rgb, step(6)).item() == 0.0
    # 1 px (columns 4, 5): within the 3 x 3 dilation
    assert alignment_frames(rgb, step(5)).item() == 1.0
    # a flat depth frame has no edges: skipped (NaN); a flat rgb frame aligns nothing (chance 0, h = 0)
    assert math.isnan(alignment_frames(rgb, step(4, high=0)).item())
    assert alignment_frames(step(4, high=0, channels=3), step(4)).item() == 0.0


def test_chance_level_uses_the_covered_fraction_of_the_frame():
    """16 x 16 frames, rgb step at column 8 (edges 7, 8; within 1 px: columns 6-9, chance 1/4)."""
    rgb = step(8, channels=3, size=16)
    # depth edges at columns 9, 10 (step at 10): column 9 is near, column 10 is not: h = 1/2
    assert alignment_frames(rgb, step(10, size=16)).item() == pytest.approx((0.5 - 0.25) / 0.75)
    # rgb edges on columns 1, 2 of a 4 px frame: within 1 px of them is the whole frame, chance 1:
    # undefined, NaN
    assert math.isnan(alignment_frames(step(2, channels=3, size=4), step(2, size=4)).item())


def test_chance_is_taken_row_by_row():
    """Hand-made edge maps (8 x 8): one edge of a at (row 6, column 1); near(a) is rows 5-7 x
    columns 0-2, so rows 5-7 are 3/8 covered and the others not at all."""
    a = torch.zeros(1, 8, 8, dtype=torch.bool)
    a[0, 6, 1] = True
    b = torch.zeros(1, 8, 8, dtype=torch.bool)
    b[0, 6, 5] = b[0, 1, 1] = True  # both missed; chance (3/8 + 0) / 2 = 3/16 (the whole frame: 9/64)
    assert alignment_of_edges(a, b).item() == pytest.approx((0 - 3 / 16) / (1 - 3 / 16))
    b[0, 5, 2] = True  # one hit of three; chance (3/8 + 0 + 3/8) / 3 = 1/4
    assert alignment_of_edges(a, b).item() == pytest.approx((1 / 3 - 1 / 4) / (3 / 4))
    full = torch.zeros(1, 8, 8, dtype=torch.bool)
    full[0, 6, ::2] = True  # near(a) covers rows 5-7 whole: b's edges there are hits by necessity
    b = torch.zeros(1, 8, 8, dtype=torch.bool)
    b[0, 6, 3] = True
    assert math.isnan(alignment_of_edges(full, b).item())
    b[0, 0, 3] = True  # one edge in an uncovered row: chance 1/2, hit rate 1/2
    assert alignment_of_edges(full, b).item() == 0.0


def test_unrelated_frames_with_edges_in_the_same_rows_score_about_zero():
    """Textured bottom halves (a ground), flat top halves (a sky): edges of both modalities sit in
    the bottom rows. Unrelated pairs score about 0 (a whole-frame chance, about the covered half,
    would give them about 0.8); a pair against itself aligns fully."""
    gen = torch.Generator().manual_seed(2)
    noise = torch.randint(0, 256, (64, 1, 34, 34), generator=gen, dtype=torch.float32)
    frames = torch.nn.functional.avg_pool2d(noise, 3, 1, 0)  # 32 x 32, no border edges
    frames[:, :, :16] = 128.0
    depth = frames.to(torch.uint8)
    rgb = depth.expand(-1, 3, -1, -1)
    assert abs(alignment_frames(rgb, depth.roll(1, dims=0)).mean().item()) < 0.08
    assert alignment_frames(rgb, depth).mean().item() == 1.0


def test_unrelated_frames_score_about_zero():
    """Smoothed noise gray frames against the depth of other frames: their edges meet only by chance (the
    plain hit rate would be the covered fraction, about half here), which scores about 0; against
    themselves they align fully."""
    gen = torch.Generator().manual_seed(1)
    noise = torch.randint(0, 256, (64, 1, 32, 32), generator=gen, dtype=torch.float32)
    depth = torch.nn.functional.avg_pool2d(noise, 3, 1, 0).to(torch.uint8)  # no padding: no border edges
    rgb = depth.expand(-1, 3, -1, -1)  # gray: its luma is the depth frame
    assert abs(alignment_frames(rgb, depth.roll(1, dims=0)).mean().item()) < 0.08
    assert alignment_frames(rgb, depth).mean().item() == 1.0


def test_three_channels_are_taken_as_luma():
    green = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    green[:, 1, :, 4:] = 200  # an edge in the green channel only
    assert alignment_frames(green, step(4)).item() == 1.0
    blue_ripple = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    blue_ripple[:, 2, :, 4:] = 8  # luma step 0.9 < one level: below the floor, no edges
    assert alignment_frames(blue_ripple, step(4)).item() == 0.0


def test_invariant_to_each_modality_intensity_scale():
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 120, (6, 3, 16, 16), generator=gen, dtype=torch.uint8)
    depth = torch.randint(0, 120, (6, 1, 16, 16), generator=gen, dtype=torch.uint8)
    base = alignment_frames(rgb, depth)
    assert torch.isfinite(base).all() and -1 < base.mean() < 1
    torch.testing.assert_close(alignment_frames(rgb * 2, depth), base, rtol=0, atol=0)
    torch.testing.assert_close(alignment_frames(rgb, depth * 2), base, rtol=0, atol=0)
    torch.testing.assert_close(alignment_frames(rgb, depth + 100), base, rtol=0, atol=0)  # and to offsets


def test_videos_average_their_frames_with_edges():
    a = torch.cat([step(4, channels=3)] * 3)  # 3 frames
    b = torch.cat([step(4), step(6), step(4, high=0)])  # aligned, half aligned, flat
    video, frame = alignment(a.transpose(0, 1)[None], b.transpose(0, 1)[None])
    np.testing.assert_array_equal(frame[0, :2], [1.0, 0.0])  # half aligned = chance here
    assert np.isnan(frame[0, 2]) and video[0] == 0.5
    flat = torch.zeros(1, 1, 2, 8, 8, dtype=torch.uint8)
    assert np.isnan(alignment(a.transpose(0, 1)[None, :, :2], flat)[0][0])


def test_score_and_summarise_pick_the_best_trajectory_and_skip_nan():
    """Two videos, two trajectories: best of N takes the highest value, a NaN video is left out."""
    rgb = torch.cat([step(4, channels=3)] * 2).transpose(0, 1)[None].repeat(2, 1, 1, 1, 1)  # [2, 3, 2, 8, 8]
    gt = {"rgb": torch.cat([rgb, rgb], dim=2), "depth": torch.zeros(2, 1, 4, 8, 8, dtype=torch.uint8)}

    def depth(*columns):  # per video, the column of its depth step (0: flat)
        return torch.stack([torch.cat([step(c, high=200 if c else 0)] * 2).transpose(0, 1) for c in columns])

    trajs = [{"rgb": rgb, "depth": depth(6, 0)}, {"rgb": rgb, "depth": depth(4, 0)}]
    result = score_batch(gt, trajs, context_frames=2, metrics={}, protocols=(PAPER, STANDARD), pairs=[("rgb", "depth")])
    values = result.values[("standard", "rgb+depth", "alignment")]
    np.testing.assert_array_equal(values.video[:, 0], [0.0, 1.0])
    assert np.isnan(values.video[:, 1]).all()
    report = summarise([result], STANDARD, dataset="d", condition="all")
    got = {r.trajectories: r.value for r in report.rows}
    assert got == {"best": 1.0, "mean": 0.5}  # the flat video scores nothing and is ignored
    assert [r.value for r in report.curves if r.trajectories == "best"] == [1.0, 1.0]
    paper = summarise([result], PAPER, dataset="d", condition="all")
    assert [(r.trajectories, r.value, r.scale) for r in paper.rows] == [("best", 1.0, 1.0)]
    with pytest.raises(ValueError, match="same count and size"):
        alignment_frames(step(4, channels=3), step(4, size=6))
