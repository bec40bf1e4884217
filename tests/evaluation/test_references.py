"""The reference columns next to the model: stage-1 models per condition, the autoencoder ceiling,
copy-last, ground-truth alignment; their plan fields, checks and outputs."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from syncvp.evaluation import AUTOENCODER, BASELINE, GROUND_TRUTH, evaluate, plan_evaluation, references, run_batch
from syncvp.evaluation import plan as plan_module
from syncvp.evaluation.batch import load_clips, networks, trajectories
from syncvp.evaluation.references import autoencode_future
from syncvp.metrics.protocol import PAPER, STANDARD, BatchResult
from syncvp.models.autoencoder import load_autoencoder
from syncvp.models.diffusion_file import ModelFileError
from tests.evaluation.conftest import NO_WEIGHTS, evaluate_config, field_dataset

REFS = dict(baselines=("single", "autoencoder"), metrics=("ssim", "l2", "alignment"))


def _plan(setup, **changes):
    ds, sampling, paths = setup
    return plan_evaluation("synthetic", ds, evaluate_config(**changes), sampling, NO_WEIGHTS, paths)


def test_plan_lists_the_references_and_their_files(setup):
    plan = _plan(setup, conditions=("all", "each"), **REFS)
    assert plan.labels == (
        "all",
        "rgb",
        "depth",
        "single-all",
        "single-rgb",
        "single-depth",
        BASELINE,
        AUTOENCODER,
        GROUND_TRUTH,
    )
    assert [(s.source, s.present) for s in plan.references[:3]] == [
        ("single", ("rgb", "depth")),
        ("single", ("rgb",)),
        ("single", ("depth",)),
    ]
    assert plan.pairs == (("rgb", "depth"),) and "alignment" not in plan.metric_plan.skipped
    assert set(plan.single_files) == {"rgb", "depth"} and set(plan.single_files.values()) <= set(plan.input_files())
    assert plan.jobs()[:9] == [(label, 0) for label in plan.labels]  # the settings of a batch run together
    bare = _plan(setup, conditions=("all",))  # no baselines, no alignment: copy_last only
    assert bare.labels == ("all", BASELINE) and bare.single_files == {} and bare.pairs == ()
    assert bare.fingerprint != plan.fingerprint


def test_fingerprint_covers_the_library_code(setup, monkeypatch):
    """A rerun after a code change (DVC reruns `evaluate` when its code deps change) must not reuse
    the batches the old code computed."""
    before = _plan(setup, conditions=("all",)).fingerprint
    assert _plan(setup, conditions=("all",)).fingerprint == before
    monkeypatch.setattr(plan_module, "code_digest", lambda: "other code")
    assert _plan(setup, conditions=("all",)).fingerprint != before


def test_single_baseline_needs_the_stage1_files_before_sampling(setup):
    _, _, paths = setup
    missing = paths.model_dir("synthetic-depth") / "diffusion.pt"
    missing.unlink()
    with pytest.raises(
        ModelFileError,
        match=r"synthetic-depth/diffusion\.pt does not exist: the single baseline "
        r"\(evaluate\.baselines\)",
    ):
        _plan(setup, **REFS)
    assert _plan(setup, baselines=("autoencoder",)).references[-1].label == AUTOENCODER


def test_alignment_needs_two_image_modalities(setup, repo_params):
    _, sampling, paths = setup
    ds = field_dataset(repo_params, paths)
    plan = plan_evaluation(
        "era5_synthetic",
        ds,
        evaluate_config(metrics=("l1", "alignment"), conditions=("all",)),
        sampling,
        NO_WEIGHTS,
        paths,
    )
    assert plan.pairs == () and GROUND_TRUTH not in plan.labels
    assert "two image modalities" in plan.metric_plan.skipped["alignment"]


def test_single_rgb_observed_modality_equals_single_all_and_the_stage1_evaluation(setup):
    plan = _plan(setup, conditions=("all", "each"), **REFS)
    clips, _ = load_clips(plan, *plan.batches[1])
    runs = {}
    for label in ("single-all", "single-rgb", "single-depth"):
        references._PARTS.clear()  # sample again: equal by the streams, not by the shared cache
        runs[label] = trajectories(plan, plan.setting(label), clips, 1)  # one rollout per mode's quantisation
    assert runs["single-all"].keys() == {PAPER.quantisation, STANDARD.quantisation}
    for q in runs["single-all"]:
        for k in range(plan.evaluate.trajectories):
            assert torch.equal(runs["single-rgb"][q][k]["rgb"], runs["single-all"][q][k]["rgb"])
            assert torch.equal(runs["single-depth"][q][k]["depth"], runs["single-all"][q][k]["depth"])
        # the unobserved modality is predicted without its context: a different prediction
        assert not torch.equal(runs["single-rgb"][q][0]["depth"], runs["single-all"][q][0]["depth"])
    # single-all is the stage-1 evaluation (evaluate.model: single), sample for sample
    stage1 = _plan(setup, model="single", conditions=("all",))
    same = trajectories(stage1, stage1.settings[0], clips, 1)
    for q in same:
        for k in range(plan.evaluate.trajectories):
            for m in ("rgb", "depth"):
                assert torch.equal(same[q][k][m], runs["single-all"][q][k][m])


class ChunkMean(torch.nn.Module):
    """decode(encode(x)) = the chunk's mean frame, repeated (so padding with zeros would show)."""

    def __init__(self, frames: int):
        super().__init__()
        self.spec = type("Spec", (), {"frames": frames})()

    def encode(self, video):
        assert video.shape[2] == self.spec.frames
        return video.mean(dim=2, keepdim=True)

    def decode(self, latent):
        return latent.expand(-1, -1, self.spec.frames, -1, -1) * 1.5  # clamped back to [-1, 1]


def test_ceiling_chunks_pads_with_the_last_frame_and_clamps():
    future = torch.rand(2, 1, 5, 4, 4) * 2 - 1
    out = autoencode_future(ChunkMean(3), future)
    first = (future[:, :, :3].mean(dim=2, keepdim=True) * 1.5).clamp(-1, 1)
    last = ((future[:, :, 3] + 2 * future[:, :, 4]) / 3 * 1.5).clamp(-1, 1)[:, :, None]
    torch.testing.assert_close(out, torch.cat([first.expand(-1, -1, 3, -1, -1), last.expand(-1, -1, 2, -1, -1)], dim=2))


def test_ceiling_is_the_future_autoencoder_applied_to_gt_chunks(setup):
    plan = _plan(setup, **REFS)
    clips, _ = load_clips(plan, *plan.batches[0])
    runs = trajectories(plan, plan.setting(AUTOENCODER), clips, 0)
    (ceiling,) = runs[STANDARD.quantisation]
    assert runs[PAPER.quantisation] == [ceiling]  # 1-channel networks: both modes score the same decoded frames
    tc = plan.config.context_frames
    for m in plan.modalities:
        ae = load_autoencoder(plan.autoencoders[m].future)
        gt = clips[m][:, :, tc:]  # 5 frames: chunks of 3 and 2 (+ 1 repeated)
        with torch.no_grad():
            head = ae.decode(ae.encode(gt[:, :, :3]))
            tail = ae.decode(ae.encode(torch.cat([gt[:, :, 3:], gt[:, :, 4:]], dim=2)))[:, :, :2]
        want = torch.cat([head, tail], dim=2).clamp(-1, 1)  # not quantised: each mode quantises it when scoring
        torch.testing.assert_close(ceiling[m], want, rtol=0, atol=1e-6)
    assert networks(plan)[0].keys() == {"joint", "rgb", "depth"}


def test_outputs_hold_every_reference(setup):
    plan = _plan(setup, conditions=("all", "rgb"), videos=2, **REFS)
    metrics = json.loads(evaluate(plan).read_text())["synthetic"]
    assert set(metrics) == {"all", "rgb", "single-all", "single-rgb", BASELINE, AUTOENCODER, GROUND_TRUTH}
    for label in set(metrics) - {GROUND_TRUTH}:
        for mode in ("paper", "standard"):
            assert set(metrics[label][mode]) == {"rgb", "depth", "rgb+depth"}
            assert -1 <= metrics[label][mode]["rgb+depth"]["alignment"] <= 1
    truth = metrics[GROUND_TRUTH]["standard"]  # the GT frames, scored for alignment only (one "trajectory")
    assert set(truth) == {"rgb+depth"} and set(truth["rgb+depth"]) == {"alignment", "alignment_mean"}
    assert 0 < truth["rgb+depth"]["alignment"] == truth["rgb+depth"]["alignment_mean"] <= 1
    assert set(metrics["single-all"]["standard"]["rgb"]) == {"ssim", "l2", "ssim_mean", "l2_mean"}
    a, b = (BatchResult.load(plan.batch_file(label, 0)) for label in ("single-all", "single-rgb"))
    assert np.array_equal(a.values[("standard", "rgb", "ssim")].frame, b.values[("standard", "rgb", "ssim")].frame)
    assert not np.array_equal(
        a.values[("standard", "depth", "ssim")].frame, b.values[("standard", "depth", "ssim")].frame
    )
    with open(plan.out_dir / "plots" / "standard-rgb+depth-alignment.tsv") as fh:
        header = next(csv.reader(fh, delimiter="\t"))
    # the evaluated settings, then flow (drawn by dvc.yaml's plots, not evaluated here: "nan")
    assert header == ["frame", "all", "rgb", "single-all", "single-rgb", BASELINE, AUTOENCODER, GROUND_TRUTH, "flow"]
    table = (plan.out_dir / "tables" / "compare.md").read_text()
    assert "| all → rgb | ssim ↑ |" in table and "| rgb only → depth | ssim ↑ |" in table
    assert "| all → rgb+depth | alignment ↑ |" in table
    assert (plan.out_dir / "samples" / f"{AUTOENCODER}.png").is_file()
    assert not (plan.out_dir / "samples" / f"{GROUND_TRUTH}.png").exists()
    # resumable like the model's settings: a reference batch file is reused as it is
    stamp = plan.batch_file(AUTOENCODER, 0).stat().st_mtime_ns
    assert evaluate(plan).read_text() and plan.batch_file(AUTOENCODER, 0).stat().st_mtime_ns == stamp
    assert run_batch(plan, plan.setting(GROUND_TRUTH), 0) == plan.batch_file(GROUND_TRUTH, 0)
