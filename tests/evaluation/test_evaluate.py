"""The evaluate library on tiny random models: outputs, baseline, skipped metrics, resume,
determinism, noise, missing-modality conditions, stage-1 models, errors before sampling, run.compile,
run.cuda_graphs."""

from __future__ import annotations

import csv
import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from syncvp import figures
from syncvp.config.evaluate import NoiseConfig
from syncvp.evaluation import (
    BASELINE,
    EvaluationError,
    add_context_noise,
    evaluate,
    plan_evaluation,
    run_batch,
    summarise_plan,
)
from syncvp.io.weights import MissingWeightsError
from syncvp.metrics.protocol import BatchResult
from syncvp.models.diffusion_file import ModelFileError
from tests.evaluation.conftest import NO_WEIGHTS, SIZE, VIDEOS, evaluate_config, field_dataset


def _plan(setup, weights=NO_WEIGHTS, **changes):
    ds, sampling, paths = setup
    return plan_evaluation(
        "synthetic", ds, evaluate_config(**changes), sampling, NO_WEIGHTS if weights is None else weights, paths
    )


def test_outputs_keys_baseline_and_skipped(setup):
    plan = _plan(setup)
    path = evaluate(plan)
    metrics = json.loads(path.read_text())
    assert set(metrics) == {"synthetic"}  # numbers only
    skipped = json.loads((plan.out_dir / "skipped.json").read_text())
    assert set(skipped) == {"fvd", "lpips"} and all(isinstance(v, str) for v in skipped.values())  # listed, never faked
    settings = metrics["synthetic"]
    assert set(settings) == {"all", "depth", BASELINE}
    for label in settings:
        for mode in ("paper", "standard"):
            assert set(settings[label][mode]) == {"rgb", "depth"}
            assert set(settings[label][mode]["rgb"]) == {"ssim", "psnr", "l2", "ssim_mean", "psnr_mean", "l2_mean"}
    # the baseline copies exact GT frames, so its SSIM is below 1 only because the videos move
    assert 0 < settings[BASELINE]["standard"]["rgb"]["ssim"] < 1
    out = plan.out_dir
    with open(out / "tables" / "videos.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["video"] for r in rows} == {f"vid{i}" for i in range(VIDEOS)}
    with open(out / "plots" / "paper-rgb-ssim.tsv") as fh:
        table = list(csv.reader(fh, delimiter="\t"))
    # the settings evaluated, then the drawn columns that were not (baselines: none here) as "nan"
    assert table[0] == ["frame", "all", "depth", BASELINE, "single-all", "flow", "autoencoder"]
    assert len(table) == 1 + plan.config.rollout_frames
    assert all(row[4:] == ["nan"] * 3 and float(row[1]) > 0 for row in table[1:])
    assert (out / "samples" / "all.png").stat().st_size > 0 and (out / "samples" / "all.gif").stat().st_size > 0


def test_resume_after_a_kill_equals_uninterrupted(setup, tmp_path):
    plan = _plan(setup)
    full = evaluate(plan).read_text()
    # a fresh process after a kill following batch 0 of "all": only that batch file exists
    kept = {p: p.read_bytes() for p in (plan.batch_file("all", 0), plan.sample_file("all", 0))}
    for f in plan.work_dir.rglob("*.npz"):
        f.unlink()
    (plan.out_dir / "metrics.json").unlink()
    for p, data in kept.items():
        p.write_bytes(data)
    kept = plan.batch_file("all", 0)
    mtime = kept.stat().st_mtime_ns
    assert evaluate(plan).read_text() == full
    assert kept.stat().st_mtime_ns == mtime  # reused, not recomputed


def test_deterministic_for_a_seed_and_seed_matters(setup):
    plan = _plan(setup, conditions=("all",))
    a = run_batch(plan, plan.settings[0], 1)
    first = BatchResult.load(a).values[("standard", "rgb", "ssim")].video.copy()
    b = run_batch(plan, plan.settings[0], 1)
    assert (BatchResult.load(b).values[("standard", "rgb", "ssim")].video == first).all()
    other = _plan(setup, conditions=("all",), seed=1)
    c = run_batch(other, other.settings[0], 1)
    assert not (BatchResult.load(c).values[("standard", "rgb", "ssim")].video == first).all()


def test_noise_sigma_zero_is_no_noise_and_sigma_changes_results(setup):
    x = torch.rand(2, 1, 2, 8, 8) * 2 - 1
    assert torch.equal(add_context_noise(x, 0.0, torch.Generator().manual_seed(0)), x)
    noisy = add_context_noise(x, 5.0, torch.Generator().manual_seed(0))
    assert 0 < (noisy - x).abs().max() and (noisy - x).std() == pytest.approx(5 / 127.5, rel=0.2)
    plan = _plan(setup, conditions=("all", "rgb"), noise=NoiseConfig(modality="depth", sigmas=(0.0, 50.0)))
    # sigma 0 is the clean run; the noisy modality is unobserved under "rgb", so no noisy setting there
    assert [s.label for s in plan.settings] == ["all", "all-noise-depth-50", "rgb"]
    clean, noisy = (BatchResult.load(run_batch(plan, s, 0)) for s in plan.settings[:2])
    key = ("standard", "depth", "l2")
    assert not (clean.values[key].frame == noisy.values[key].frame).all()


def test_missing_modality_and_stage1_models_run(setup):
    plan = _plan(setup, conditions=("each",), videos=2)
    assert [s.present for s in plan.settings] == [("rgb",), ("depth",)]
    metrics = json.loads(evaluate(plan).read_text())["synthetic"]
    assert set(metrics) == {"rgb", "depth", BASELINE}
    single = _plan(setup, model="single", conditions=("all",), videos=2, reduce="best", protocols=("paper",))
    assert set(single.model_files) == {"rgb", "depth"}
    metrics = json.loads(evaluate(single).read_text())["synthetic"]
    assert set(metrics["all"]["paper"]["depth"]) == {"ssim", "psnr", "l2"}


def test_errors_before_sampling(setup, tmp_path):
    ds, sampling, paths = setup
    with pytest.raises(EvaluationError, match="semantic"):
        _plan(setup, conditions=("all", "semantic"))
    with pytest.raises(EvaluationError, match="noise.modality"):
        _plan(setup, noise=NoiseConfig(modality="t2m", sigmas=(2.5,)))
    weights = NO_WEIGHTS.__class__(**{**NO_WEIGHTS.__dict__, "i3d": tmp_path / "i3d_pretrained_400.pt"})
    with pytest.raises(MissingWeightsError, match="i3d_pretrained_400.pt"):
        _plan(setup, weights=weights)
    (paths.models / "synthetic" / "joint.pt").unlink()
    with pytest.raises(ModelFileError, match="joint.pt"):
        _plan(setup)


def test_summary_needs_every_batch(setup):
    plan = _plan(setup, conditions=("all",))
    run_batch(plan, plan.settings[0], 0)
    with pytest.raises(FileNotFoundError):
        summarise_plan(plan)


def test_field_modalities_are_scored_in_physical_units(setup, repo_params):
    _, sampling, paths = setup
    ds = field_dataset(repo_params, paths)
    plan = plan_evaluation(
        "era5_synthetic", ds, evaluate_config(conditions=("all",), videos=2), sampling, NO_WEIGHTS, paths
    )
    assert plan.metrics_for("t2m") == ("l1",)
    metrics = json.loads(evaluate(plan).read_text())["era5_synthetic"]
    for label in ("all", BASELINE):
        assert set(metrics[label]["standard"]["sp"]) == {"l1", "l1_mean"}
    # random fields over [lo, hi]: the L1 of a copy is about (hi - lo) / 3 in physical units
    assert 1.0e3 < metrics[BASELINE]["paper"]["sp"]["l1"] < 1.0e4 and 5 < metrics[BASELINE]["paper"]["t2m"]["l1"] < 30
    with open(plan.out_dir / "tables" / "summary.csv") as fh:
        units = {(r["modality"], r["units"]) for r in csv.DictReader(fh)}
    assert units == {("t2m", "K"), ("sp", "Pa")}
    grid = iio.imread(plan.out_dir / "samples" / "all.png")[..., :3]
    tile = SIZE * figures.display_scale(SIZE)
    lay = figures.GridLayout.of_image(grid.shape, (tile, tile), plan.frames, plan.config.context_frames)
    assert lay.bar and lay.rows == 2 * 2 * 2  # a colour bar beside every field row; 2 sample videos
    for i, (lo, hi) in enumerate([(250.0, 300.0), (250.0, 300.0), (9.0e4, 1.05e5), (9.0e4, 1.05e5)]):  # t2m, sp rows
        ramp = grid[lay.row_y(i) : lay.row_y(i) + tile, lay.bar_x + 10]
        assert np.array_equal(ramp[0], figures.display(np.array([[[hi]]]), "field", lo, hi)[0, 0, 0])


@pytest.mark.gpu
def test_evaluation_on_cuda_matches_shapes_and_keys(setup):
    ds, sampling, paths = setup
    config = evaluate_config(
        conditions=("all", "rgb"), videos=2, metrics=("ssim", "l2", "alignment"), baselines=("single", "autoencoder")
    )
    plan = plan_evaluation("synthetic", ds, config, sampling, NO_WEIGHTS, paths, device="cuda")
    metrics = json.loads(evaluate(plan).read_text())["synthetic"]
    assert 0 < metrics["all"]["standard"]["rgb"]["ssim"] <= 1
    for label in ("single-all", "single-rgb", "autoencoder", "ground_truth"):  # the references run on CUDA too
        assert -1 <= metrics[label]["standard"]["rgb+depth"]["alignment"] <= 1


def test_flow_reference_is_the_flow_extrapolation_of_the_context(setup, repo_params):
    import dataclasses

    from syncvp.evaluation import references
    from syncvp.evaluation.batch import load_clips
    from syncvp.models.context import flow_extrapolate

    plan = _plan(setup, conditions=("all",), baselines=("flow",), videos=2)
    assert "flow" in [s.label for s in plan.references]
    clips, _ = load_clips(plan, 0, 2)
    out = references.flow_extrapolation(plan, clips)
    for m in ("rgb", "depth"):
        # clamped floats: each mode quantises them with its rounding, as predictions
        want = flow_extrapolate(clips[m][:, :, :2].float(), plan.config.rollout_frames).clamp(-1, 1)
        assert torch.equal(out[m], want) and out[m].shape[2] == plan.config.rollout_frames
    metrics = json.loads(evaluate(plan).read_text())["synthetic"]
    assert 0 < metrics["flow"]["standard"]["rgb"]["ssim"] <= 1
    # fields with a NaN sea mask: the extrapolation stays finite
    ds, sampling, paths = setup
    fields = field_dataset(repo_params, paths)
    field_plan = plan_evaluation(
        "era5_synthetic",
        fields,
        evaluate_config(conditions=("all",), baselines=("flow",), videos=2, metrics=("l1",)),
        sampling,
        NO_WEIGHTS,
        paths,
    )
    clips, _ = load_clips(field_plan, 0, 2)
    assert all(torch.isfinite(v).all() for v in references.flow_extrapolation(field_plan, clips).values())
    one = dataclasses.replace(setup[0], context_frames=1)
    with pytest.raises(EvaluationError, match="flow extrapolates the motion between the last two context frames"):
        plan_evaluation("synthetic", one, evaluate_config(baselines=("flow",)), sampling, NO_WEIGHTS, paths)


def test_completion_settings_and_flicker(setup):
    """complete-each: every frame of one modality given, the other completed and scored; the given one
    is not scored but stays in the pair metrics; flicker next to its ground-truth reference."""
    from syncvp.evaluation.batch import load_clips, trajectories

    plan = _plan(setup, conditions=("all", "complete-each"), videos=2, metrics=("ssim", "l2", "alignment", "flicker"))
    assert [(s.label, s.present, s.given) for s in plan.settings] == [
        ("all", ("rgb", "depth"), ()),
        ("complete-rgb", ("rgb",), ("rgb",)),
        ("complete-depth", ("depth",), ("depth",)),
    ]
    assert "ground_truth" in [s.label for s in plan.references]
    clips, _ = load_clips(plan, 0, 2)
    runs = trajectories(plan, plan.setting("complete-rgb"), clips, 0)
    for run in runs.values():
        for traj in run:  # the given modality's "prediction" is its GT future
            assert torch.equal(traj["rgb"], clips["rgb"][:, :, 2:].float())
            assert traj["depth"].shape == clips["depth"][:, :, 2:].shape
    metrics = json.loads(evaluate(plan).read_text())["synthetic"]
    done = metrics["complete-rgb"]["standard"]
    assert set(done) == {"depth", "rgb+depth"} and 0 < done["depth"]["ssim"] <= 1
    # (the test videos are noise: no pixel stands still, so flicker is "nan", never a made-up number)
    assert "flicker" in done["rgb+depth"] and -1 <= done["rgb+depth"]["alignment"] <= 1
    assert "flicker" in metrics["ground_truth"]["standard"]["rgb+depth"]
    table = (plan.out_dir / "tables" / "compare.md").read_text()
    assert "| rgb given → depth | ssim ↑ |" in table and "| depth given → rgb | l2 ↓ |" in table
    with pytest.raises(EvaluationError, match="complete-semantic"):
        _plan(setup, conditions=("complete-semantic",))


def test_run_compile_reaches_the_sampler_and_a_failing_compiler_only_warns(setup, monkeypatch):
    """plan_evaluation(compile=...) (the stage passes params run.compile) compiles the predictors'
    diffusion models; a compiler that fails leaves the eager results and one warning in the
    running batch's log."""
    from syncvp.evaluation import networks
    from syncvp.training import fastpath
    from tests.training.test_compile_guard import Backend

    ds, sampling, paths = setup
    config = evaluate_config(conditions=("all",), videos=2)
    eager = plan_evaluation("synthetic", ds, config, sampling, NO_WEIGHTS, paths)
    plan = plan_evaluation("synthetic", ds, config, sampling, NO_WEIGHTS, paths, compile=True, channels_last=True)
    assert (plan.compile, plan.channels_last) == (True, True) and plan.fingerprint != eager.fingerprint
    assert networks(eager)[0]["joint"].model._compiled_call_impl is None
    ref = BatchResult.load(run_batch(eager, eager.settings[0], 0))
    backend, warnings = Backend(), []
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", backend)
    assert networks(plan)[0]["joint"].model._compiled_call_impl is not None
    out = BatchResult.load(run_batch(plan, plan.settings[0], 0, warn=warnings.append))
    assert backend.calls == 1 and len(warnings) == 1 and "torch.compile failed for JointUNet" in warnings[0]
    for key, value in ref.values.items():
        np.testing.assert_allclose(out.values[key].video, value.video, atol=1e-5)


def test_run_cuda_graphs_reaches_the_sampler(setup):
    """plan_evaluation(cuda_graphs=...) (the stage passes params run.cuda_graphs) is in the
    fingerprint and reaches the predictors, whose capture warning goes to the running batch's log."""
    from syncvp.evaluation import batch, networks

    ds, sampling, paths = setup
    config = evaluate_config(conditions=("all",), videos=2)
    plain = plan_evaluation("synthetic", ds, config, sampling, NO_WEIGHTS, paths)
    graphed = plan_evaluation("synthetic", ds, config, sampling, NO_WEIGHTS, paths, cuda_graphs=True)
    compiled = plan_evaluation("synthetic", ds, config, sampling, NO_WEIGHTS, paths, compile=True)
    assert (plain.cuda_graphs, graphed.cuda_graphs, compiled.cuda_graphs) == (False, True, False)
    assert len({plain.fingerprint, graphed.fingerprint, compiled.fingerprint}) == 3
    assert networks(plain)[0]["joint"].cuda_graphs is False
    joint = networks(graphed)[0]["joint"]
    assert joint.cuda_graphs is True and joint.warn is batch._warn
