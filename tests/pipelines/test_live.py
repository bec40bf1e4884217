"""pipelines/live.py: the flow layer's DVCLive sink on synthetic progress events (exact files),
its resume after a kill, and the rewrite from a finished run's history."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.live import LiveCurves
from syncvp.progress import CURVE, HELD_OUT, ProgressEvent
from syncvp.training import autoencoder_train


def events(steps, start: int = 0):
    """An autoencoder-like stream: held-out at every even step, a loss point at every step > 0,
    and a per-step event of `fit` (no message) that carries no curve point."""
    for s in steps:
        if s >= start and s > 0:
            yield ProgressEvent("u reconstruct", s, 6, {"autoencoder/loss": 1.0 / s, "l1": 0.5 / s}, CURVE)
            yield ProgressEvent("u reconstruct", s, 6, {"autoencoder/loss": 9.0})
        if s >= start and s % 2 == 0:
            yield ProgressEvent("u reconstruct", s, 6, {"psnr": 20.0 + s, "ssim": 0.5, "l1": 7.0}, HELD_OUT)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_sink_writes_one_tsv_per_curve_and_a_numbers_only_summary(tmp_path):
    sink = LiveCurves(tmp_path / "dvclive", autoencoder_train.curve_point)
    for event in events(range(0, 5)):
        sink(event)
    got = files(tmp_path / "dvclive")
    assert sorted(got) == [
        "metrics.json",
        "plots/metrics/l1.tsv",
        "plots/metrics/loss.tsv",
        "plots/metrics/psnr.tsv",
        "plots/metrics/ssim.tsv",
    ]
    assert got["plots/metrics/psnr.tsv"] == b"step\tpsnr\n0\t20.0\n2\t22.0\n4\t24.0\n"
    assert got["plots/metrics/ssim.tsv"] == b"step\tssim\n0\t0.5\n2\t0.5\n4\t0.5\n"
    assert got["plots/metrics/loss.tsv"] == b"step\tloss\n1\t1.0\n2\t0.5\n3\t0.3333333333333333\n4\t0.25\n"
    assert got["plots/metrics/l1.tsv"] == b"step\tl1\n1\t0.5\n2\t0.25\n3\t0.16666666666666666\n4\t0.125\n"
    summary = json.loads(got["metrics.json"])
    assert summary == {"l1": 0.125, "loss": 0.25, "psnr": 24.0, "ssim": 0.5, "step": 4}
    assert list(summary) == ["l1", "loss", "psnr", "ssim", "step"]
    assert not (tmp_path / "dvclive" / "dvc.yaml").exists() and not (tmp_path / "dvc.yaml").exists()


def test_summary_is_updated_at_every_logged_step(tmp_path):
    sink = LiveCurves(tmp_path / "dvclive", autoencoder_train.curve_point)
    for s, event in enumerate(events(range(0, 3))):
        sink(event)
        if event.message:
            assert json.loads((tmp_path / "dvclive" / "metrics.json").read_text())["step"] == event.done


def test_non_finite_values_stay_out_of_the_summary(tmp_path):
    sink = LiveCurves(tmp_path / "dvclive", autoencoder_train.curve_point)
    sink(ProgressEvent("u", 1, 2, {"autoencoder/loss": float("nan"), "l1": 0.5}, CURVE))
    assert json.loads((tmp_path / "dvclive" / "metrics.json").read_text()) == {"l1": 0.5, "step": 1}
    assert (tmp_path / "dvclive" / "plots" / "metrics" / "loss.tsv").read_text() == "step\tloss\n1\tnan\n"


def test_killed_and_resumed_equals_uninterrupted_and_the_rewrite(tmp_path):
    straight = LiveCurves(tmp_path / "straight", autoencoder_train.curve_point)
    for event in events(range(0, 7)):
        straight(event)
    # killed after step 5, last checkpoint at step 3: a new process replays steps 4.. (the
    # held-out at step 4 and the loss points at 4 and 5 were already written once)
    killed = LiveCurves(tmp_path / "killed", autoencoder_train.curve_point)
    for event in events(range(0, 6)):
        killed(event)
    resumed = LiveCurves(tmp_path / "killed", autoencoder_train.curve_point)
    for event in events(range(0, 7), start=4):
        resumed(event)
    assert files(tmp_path / "killed") == files(tmp_path / "straight")
    # what the stage leaves: the folder written afresh from the checkpointed history, the same bytes
    series = {
        "psnr": [(s, 20.0 + s) for s in (0, 2, 4, 6)],
        "ssim": [(s, 0.5) for s in (0, 2, 4, 6)],
        "loss": [(s, 1.0 / s) for s in range(1, 7)],
        "l1": [(s, 0.5 / s) for s in range(1, 7)],
    }
    (tmp_path / "killed" / "plots" / "metrics" / "stale.tsv").write_text("step\tstale\n9\t1\n")
    LiveCurves(tmp_path / "killed", autoencoder_train.curve_point).rewrite(series)
    assert files(tmp_path / "killed") == files(tmp_path / "straight")


def test_the_sink_never_talks_to_studio(tmp_path, monkeypatch):
    monkeypatch.setenv("DVC_STUDIO_TOKEN", "not-a-token")  # a configured Studio is ignored
    monkeypatch.setenv("DVC_STUDIO_OFFLINE", "false")
    sink = LiveCurves(tmp_path / "dvclive", autoencoder_train.curve_point)
    sink(ProgressEvent("u", 1, 2, {"autoencoder/loss": 1.0, "l1": 0.5}, CURVE))
    assert {"start", "data", "done"} <= sink._live._studio_events_to_skip
    assert not sink._live._save_dvc_exp and sink._live._report_mode is None
