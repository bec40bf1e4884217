"""The paper and standard modes: each documented difference, and agreement everywhere else."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from syncvp.metrics.fvd import frechet_distance
from syncvp.metrics.plan import MetricModels
from syncvp.metrics.protocol import PAPER, STANDARD, BatchResult, copy_last_frame, score_batch
from syncvp.metrics.report import summarise
from syncvp.metrics.ssim_psnr import ssim
from syncvp.metrics.weather import FieldSpec


class PooledFeatures(nn.Module):
    """A cheap stand-in for I3D: [b, 3, t, 224, 224] -> [b, 12] pooled values."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return self.gain * F.adaptive_avg_pool3d(x, (1, 2, 2)).flatten(1)


def video(seed: int, b: int = 2, c: int = 3, t: int = 6, lo: int = 0, hi: int = 256, size: int = 32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(lo, hi, (b, c, t, size, size), dtype=torch.uint8, generator=gen)


def noisy(x: torch.Tensor, seed: int, sigma: float = 0.1) -> torch.Tensor:
    """Model-space predictions near x."""
    gen = torch.Generator().manual_seed(seed)
    return x.float() / 127.5 - 1 + sigma * torch.randn(x.shape, generator=gen)


def values(result: BatchResult, mode: str, metric: str, modality: str = "rgb") -> np.ndarray:
    return result.values[(mode, modality, metric)].video


def rows(report) -> dict[tuple[str, str, str], float]:
    return {(r.modality, r.metric, r.trajectories): r.value for r in report.rows}


def test_the_modes_differ_in_exactly_the_documented_fields():
    assert (
        dataclasses.replace(
            PAPER,
            name="standard",
            rounding="round",
            scope="range",
            reduce="videos",
            trajectories=("best", "mean"),
            scales=(),
            frechet_dtype=torch.float64,
            network_channels=False,
        )
        == STANDARD
    )
    with pytest.raises(ValueError, match=r"Protocol.trajectories: expected best and/or mean, got \('worst',\)"):
        dataclasses.replace(PAPER, trajectories=("worst",))


def test_modes_agree_without_batch_coupling_and_quantisation():
    gt = video(0, b=1, t=8)
    pred = video(1, b=1, t=6)
    for x in (gt, pred):  # both span the full 0..255 range
        x[0, 0, 0, 0, 0], x[0, 0, 0, 0, 1] = 0, 255
    result = score_batch({"rgb": gt}, [{"rgb": pred}], context_frames=2, metrics={"rgb": ["ssim", "l2", "psnr"]})
    for metric in ("ssim", "l2", "psnr"):
        np.testing.assert_array_equal(values(result, "paper", metric), values(result, "standard", metric))
    paper = rows(summarise([result], PAPER, dataset="d", condition="c"))
    standard = rows(summarise([result], STANDARD, dataset="d", condition="c"))
    assert paper[("rgb", "ssim", "best")] == standard[("rgb", "ssim", "best")] == standard[("rgb", "ssim", "mean")]
    assert paper[("rgb", "l2", "best")] == pytest.approx(100 * standard[("rgb", "l2", "best")], rel=1e-12)
    assert paper[("rgb", "psnr", "best")] == standard[("rgb", "psnr", "best")]
    assert set(paper) == {("rgb", m, "best") for m in ("ssim", "l2", "psnr")}


def test_batch_min_max_couples_videos_in_paper_mode_only():
    gt, pred = video(2, lo=20, hi=200), video(3, lo=30, hi=180)
    gt[1], pred[1] = gt[1] // 2, pred[1] // 2  # a darker second video changes the batch range
    result = score_batch({"rgb": gt}, [{"rgb": pred[:, :, 2:]}], context_frames=2, metrics={"rgb": ["ssim"]})

    def norm(x, lo, hi):
        return (x.double() - lo) / (hi - lo)

    future = gt[:, :, 2:]
    for b in range(2):
        frames_p = norm(pred[b, :, 2:], pred[:, :, 2:].min(), pred[:, :, 2:].max()).transpose(0, 1)
        frames_g = norm(future[b], future.min(), future.max()).transpose(0, 1)
        assert values(result, "paper", "ssim")[0, b] == pytest.approx(
            ssim(frames_p.float(), frames_g.float()).mean().item(), abs=1e-6
        )
        fixed = ssim(pred[b, :, 2:].transpose(0, 1).float() / 255, future[b].transpose(0, 1).float() / 255)
        assert values(result, "standard", "ssim")[0, b] == pytest.approx(fixed.mean().item(), abs=1e-6)
    assert np.abs(values(result, "paper", "ssim") - values(result, "standard", "ssim")).min() > 1e-3
    # the standard value of a video does not depend on its batch mates
    alone = score_batch({"rgb": gt[:1]}, [{"rgb": pred[:1, :, 2:]}], context_frames=2, metrics={"rgb": ["ssim"]})
    assert values(alone, "standard", "ssim")[0, 0] == values(result, "standard", "ssim")[0, 0]
    assert values(alone, "paper", "ssim")[0, 0] != values(result, "paper", "ssim")[0, 0]


def test_truncation_versus_rounding():
    gt = video(4, b=1, t=4)
    pred = gt[:, :, 2:].float() / 127.5 - 1 + 0.6 / 127.5  # every value 0.6 grey levels too bright
    result = score_batch({"rgb": gt}, [{"rgb": pred}], context_frames=2, metrics={"rgb": ["psnr"]})
    # truncation keeps the GT values (except float error at most one level down), rounding adds one level
    assert values(result, "standard", "psnr")[0, 0] == pytest.approx(20 * np.log10(255), abs=0.05)
    assert values(result, "paper", "psnr")[0, 0] > values(result, "standard", "psnr")[0, 0] + 10


def test_each_mode_scores_the_rollout_of_its_own_quantisation():
    gt = video(7, b=2, t=5)
    paper_run, standard_run = [{"rgb": noisy(gt[:, :, 2:], 8)}], [{"rgb": noisy(gt[:, :, 2:], 9)}]
    names = {"rgb": ["ssim", "l2", "psnr"]}
    both = score_batch(
        {"rgb": gt},
        {PAPER.quantisation: paper_run, STANDARD.quantisation: standard_run},
        context_frames=2,
        metrics=names,
    )
    paper = score_batch({"rgb": gt}, paper_run, context_frames=2, metrics=names, protocols=(PAPER,))
    standard = score_batch({"rgb": gt}, standard_run, context_frames=2, metrics=names, protocols=(STANDARD,))
    for metric in ("ssim", "l2", "psnr"):
        np.testing.assert_array_equal(values(both, "paper", metric), values(paper, "paper", metric))
        np.testing.assert_array_equal(values(both, "standard", metric), values(standard, "standard", metric))
    with pytest.raises(ValueError, match=r"no predictions for the quantisation of mode\(s\) \['paper'\]"):
        score_batch({"rgb": gt}, {STANDARD.quantisation: standard_run}, context_frames=2, metrics=names)


def test_three_channel_depth_is_scored_against_the_replicated_gt():
    """A 1-channel modality predicted at a 3-channel network's channels (paper mode with gray_to_rgb):
    identical channels score as the 1-channel prediction; 6 flipped values of 6144 (one video, 2
    frames of 3 x 32 x 32) give L2 = RMSE = sqrt(6 / 6144) = 1 / 32 and PSNR = 10 log10(1024)."""
    gen = torch.Generator().manual_seed(10)
    gt = (torch.randint(0, 2, (1, 1, 4, 32, 32), generator=gen) * 255).to(torch.uint8)
    one = gt[:, :, 2:].clone()
    same = one.expand(-1, 3, -1, -1, -1).clone()
    names = {"depth": ["ssim", "l2", "psnr"]}
    a = score_batch(
        {"depth": gt},
        {PAPER.quantisation: [{"depth": same}], STANDARD.quantisation: [{"depth": one}]},
        context_frames=2,
        metrics=names,
    )
    b = score_batch({"depth": gt}, [{"depth": one}], context_frames=2, metrics=names)
    for metric in ("ssim", "l2", "psnr"):
        assert values(a, "paper", metric, "depth") == pytest.approx(values(b, "paper", metric, "depth"), abs=1e-6)
    flipped = same.clone()
    for i in range(6):
        flipped[0, 1, i % 2, i, 3 * i] = 255 - flipped[0, 1, i % 2, i, 3 * i]
    c = score_batch(
        {"depth": gt},
        {PAPER.quantisation: [{"depth": flipped}], STANDARD.quantisation: [{"depth": one}]},
        context_frames=2,
        metrics=names,
    )
    assert values(c, "paper", "l2", "depth")[0, 0] == pytest.approx(1 / 32, abs=1e-12)
    assert values(c, "paper", "psnr", "depth")[0, 0] == pytest.approx(10 * np.log10(1024), abs=1e-9)
    assert values(c, "paper", "ssim", "depth")[0, 0] < values(a, "paper", "ssim", "depth")[0, 0]
    assert values(c, "standard", "l2", "depth")[0, 0] == 0


def test_trajectory_and_video_reductions_and_scales():
    gt = [video(5, b=3), video(6, b=1)]
    trajs = [[{"rgb": noisy(g[:, :, 2:], seed)} for seed in (10, 11)] for g in gt]
    # trajectory 1 is perfect for video 0 (a quarter level up: truncation and rounding both give GT)
    trajs[0][1]["rgb"][0] = (gt[0][0, :, 2:].float() + 0.25) / 127.5 - 1
    results = [
        score_batch({"rgb": g}, t, context_frames=2, metrics={"rgb": ["ssim", "l2"]}, video_ids=ids)
        for g, t, ids in zip(gt, trajs, (["a", "b", "c"], ["d"]))
    ]
    for mode, protocol in (("paper", PAPER), ("standard", STANDARD)):
        per_batch = [values(r, mode, "ssim") for r in results]
        best = [v.max(axis=0) for v in per_batch]
        assert best[0][0] == pytest.approx(1.0, abs=1e-6)
        report = summarise(results, protocol, dataset="d", condition="c")
        got = rows(report)
        if mode == "paper":
            assert got[("rgb", "ssim", "best")] == pytest.approx(np.mean([b.mean() for b in best]), abs=1e-12)
            l2_best = np.mean([values(r, mode, "l2").min(axis=0).mean() for r in results])
            assert got[("rgb", "l2", "best")] == pytest.approx(100 * l2_best, rel=1e-12)
            assert ("rgb", "ssim", "mean") not in got
        else:
            assert got[("rgb", "ssim", "best")] == pytest.approx(np.concatenate(best).mean(), abs=1e-12)
            mean = np.concatenate([v.mean(axis=0) for v in per_batch]).mean()
            assert got[("rgb", "ssim", "mean")] == pytest.approx(mean, abs=1e-12)
        assert [r.video for r in report.videos if r.metric == "ssim" and r.trajectories == "best"] == [
            "a",
            "b",
            "c",
            "d",
        ]
        for how in protocol.trajectories:  # the SSIM curve averages to the summary value
            curve = [r.value for r in report.curves if r.metric == "ssim" and r.trajectories == how]
            assert [r.frame for r in report.curves if r.metric == "ssim" and r.trajectories == how] == [1, 2, 3, 4]
            assert np.mean(curve) == pytest.approx(got[("rgb", "ssim", how)], abs=1e-12)


def test_fvd_pools_batches_and_trajectories_with_context_frames():
    models = MetricModels(i3d=PooledFeatures())
    gt = [video(7, b=3, t=20), video(8, b=2, t=20)]
    # uint8 predictions (both modes see the same frames), darker than GT
    trajs = [[{"rgb": video(seed, b=g.shape[0], t=16, hi=160)} for seed in (1 + i, 5 + i)] for i, g in enumerate(gt)]
    results = [
        score_batch({"rgb": g}, t, context_frames=4, metrics={"rgb": ["fvd"]}, models=models) for g, t in zip(gt, trajs)
    ]
    assert results[0].real["rgb"].shape == (6, 12)  # 3 videos x 2 chunks (16 + 4 frames)
    assert results[0].fake[("paper", "rgb")].shape == (12, 12)  # x 2 trajectories
    paper = rows(summarise(results, PAPER, dataset="d", condition="c"))[("rgb", "fvd", "all")]
    standard = rows(summarise(results, STANDARD, dataset="d", condition="c"))[("rgb", "fvd", "all")]
    real = np.concatenate([r.real["rgb"] for r in results])
    fake = np.concatenate([r.fake[("standard", "rgb")] for r in results])
    assert standard == pytest.approx(frechet_distance(fake, real), rel=1e-12)
    assert paper == pytest.approx(standard, rel=1e-3)  # only float32 vs float64 differs here
    # the predicted set starts with the GT context frames
    exact = score_batch(
        {"rgb": gt[0]}, [{"rgb": gt[0][:, :, 4:]}], context_frames=4, metrics={"rgb": ["fvd"]}, models=models
    )
    np.testing.assert_array_equal(exact.fake[("paper", "rgb")], exact.real["rgb"])


def test_copy_last_frame_baseline_on_a_static_video(lpips_package, alexnet_file):
    from syncvp.metrics.lpips_alex import build_lpips_alex

    frame = video(9, b=2, t=1)
    static = frame.repeat(1, 1, 6, 1, 1)
    pred = copy_last_frame(static[:, :, :2], 4)
    assert pred.shape == (2, 3, 4, 32, 32) and torch.equal(pred, static[:, :, 2:])
    models = MetricModels(lpips=build_lpips_alex(alexnet_file))
    result = score_batch(
        {"rgb": static},
        [{"rgb": pred}],
        context_frames=2,
        metrics={"rgb": ["ssim", "l2", "lpips", "psnr"]},
        models=models,
    )
    for protocol in (PAPER, STANDARD):
        got = rows(summarise([result], protocol, dataset="d", condition="copy_last"))
        assert got[("rgb", "ssim", "best")] == pytest.approx(1.0, abs=1e-6)
        assert got[("rgb", "l2", "best")] == 0.0
        assert abs(got[("rgb", "lpips", "best")]) < 1e-3
        assert got[("rgb", "psnr", "best")] == float("inf")
    report = summarise([result], PAPER, dataset="d", condition="copy_last")
    assert report.metrics_json()["d"]["copy_last"]["paper"]["rgb"]["psnr"] == "inf"


def test_fields_report_l1_in_their_units_in_both_modes():
    spec = FieldSpec(lo=50000.0, hi=105000.0, units="Pa")
    gen = torch.Generator().manual_seed(0)
    gt = torch.rand(2, 1, 5, 8, 8, generator=gen) * 2 - 1
    valid = torch.ones(2, 1, 5, 8, 8, dtype=torch.bool)
    valid[:, :, :, :2] = False
    pred = gt[:, :, 2:] + 0.01
    pred[~valid[:, :, 2:]] = 5.0
    result = score_batch(
        {"sp": gt}, [{"sp": pred}], context_frames=2, metrics={"sp": ["l1"]}, fields={"sp": spec}, valid=valid
    )
    for protocol in (PAPER, STANDARD):
        report = summarise([result], protocol, dataset="era5", condition="joint", units={"sp": "Pa"})
        (row,) = [r for r in report.rows if r.trajectories == "best"]
        assert row.units == "Pa" and row.value == pytest.approx(0.01 * 55000 / 2, rel=1e-3)
    with pytest.raises(ValueError, match="do not apply to a field"):
        score_batch({"sp": gt}, [{"sp": pred}], context_frames=2, metrics={"sp": ["ssim"]}, fields={"sp": spec})


def test_resumed_batches_equal_an_uninterrupted_run(tmp_path):
    models = MetricModels(i3d=PooledFeatures())
    gt = [video(12, b=2, t=18), video(13, b=2, t=18)]
    results = [
        score_batch(
            {"rgb": g, "depth": g[:, :1]},
            [{"rgb": noisy(g[:, :, 2:], 1), "depth": noisy(g[:, :1, 2:], 2)}],
            context_frames=2,
            metrics={"rgb": ["fvd", "ssim"], "depth": ["l2"]},
            models=models,
            video_ids=[f"v{i}", f"w{i}"],
        )
        for i, g in enumerate(gt)
    ]
    for i, r in enumerate(results):
        r.save(tmp_path / f"batch{i}.npz")
    loaded = [BatchResult.load(tmp_path / f"batch{i}.npz") for i in range(2)]
    for protocol in (PAPER, STANDARD):
        a = summarise(results, protocol, dataset="d", condition="c")
        b = summarise(loaded, protocol, dataset="d", condition="c")
        assert a == b
    report = summarise(
        loaded, PAPER, dataset="d", condition="c", skipped={"lpips": "params.yaml weights.lpips_alexnet is null"}
    )
    report = report.merge(summarise(loaded, STANDARD, dataset="d", condition="c"))
    report.write(tmp_path / "out")
    from syncvp.config.layout import METRICS, SKIPPED  # the pipeline's names for the files written here

    assert (tmp_path / "out" / METRICS).is_file() and (tmp_path / "out" / SKIPPED).is_file()
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert set(data) == {"d"}  # numbers only: the skipped metrics are in skipped.json
    assert set(data["d"]["c"]) == {"paper", "standard"}
    assert set(data["d"]["c"]["standard"]["rgb"]) == {"fvd", "ssim", "ssim_mean"}
    skipped = json.loads((tmp_path / "out" / "skipped.json").read_text())
    assert skipped == {"lpips": "params.yaml weights.lpips_alexnet is null"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "curves.csv",
        "metrics.json",
        "skipped.json",
        "summary.csv",
        "videos.csv",
    ]


def test_input_errors_name_the_problem():
    gt = video(14, b=1, t=6)
    with pytest.raises(ValueError, match=r"must be \[B, C, 2 context \+ 3 predicted"):
        score_batch({"rgb": gt}, [{"rgb": gt[:, :, 3:]}], context_frames=2, metrics={"rgb": ["ssim"]})
    with pytest.raises(ValueError, match="fvd requested but its network is not loaded"):
        score_batch({"rgb": gt}, [{"rgb": gt[:, :, 2:]}], context_frames=2, metrics={"rgb": ["fvd"]})
    with pytest.raises(ValueError, match="do not apply to an image"):
        score_batch({"rgb": gt}, [{"rgb": gt[:, :, 2:]}], context_frames=2, metrics={"rgb": ["l1"]})


@pytest.mark.gpu
def test_cuda_scoring_matches_cpu(tmp_path, lpips_package, alexnet_file):
    from syncvp.metrics.i3d import load_i3d
    from syncvp.metrics.lpips_alex import build_lpips_alex
    from tests.metrics.conftest import i3d_state

    path = tmp_path / "i3d.pt"
    torch.save(i3d_state(), path)
    gt = video(15, b=2, t=18)
    preds = [{"rgb": noisy(gt[:, :, 2:], 3)}]
    metrics = {"rgb": ["fvd", "lpips", "ssim"]}
    out = {}
    for device in ("cpu", "cuda"):
        models = MetricModels(i3d=load_i3d(path, device), lpips=build_lpips_alex(alexnet_file, device))
        out[device] = score_batch({"rgb": gt}, preds, context_frames=2, metrics=metrics, models=models)
    np.testing.assert_allclose(out["cuda"].real["rgb"], out["cpu"].real["rgb"], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(values(out["cuda"], "paper", "lpips"), values(out["cpu"], "paper", "lpips"), atol=1e-4)
