"""The training core's run records and checkpoint readings: curve files, the finished-run marker,
`resume` and `load_finished`."""

from __future__ import annotations

import json

import pytest
import torch

from syncvp.io.checkpoint import CheckpointError
from syncvp.training.records import clear_finished, curve_tsv, mark_finished, write_curve
from syncvp.training.state import TrainState, load_finished, resume


def test_curve_tsv_formats_steps_as_integers_and_skips_incomplete_rows(tmp_path):
    rows = [
        {"step": 0, "loss": 1.0, "l1": 0.123456789},
        {"step": 10, "loss": 2.5e-7},
        {"step": 20, "loss": 0.5, "l1": 3},
    ]
    assert curve_tsv(rows, ("step", "loss", "l1")) == "step\tloss\tl1\n0\t1\t0.123457\n20\t0.5\t3\n"
    assert curve_tsv([], ("step", "psnr")) == "step\tpsnr\n"
    write_curve(tmp_path / "plots" / "loss.tsv", rows, ("step", "loss"))
    assert (tmp_path / "plots" / "loss.tsv").read_text() == "step\tloss\n0\t1\n10\t2.5e-07\n20\t0.5\n"


def test_the_marker_retires_the_checkpoints(tmp_path):
    checkpoints = [tmp_path / "a.pt", tmp_path / "b.pt"]
    checkpoints[0].write_bytes(b"x")
    marker = tmp_path / "status.json"
    mark_finished(marker, checkpoints, {"unit": "u"})
    assert not any(p.exists() for p in checkpoints)
    assert json.loads(marker.read_text()) == {"finished": True, "unit": "u"}
    clear_finished(marker)
    clear_finished(marker)  # no marker: nothing to do
    assert not marker.exists()


def _state(step: int = 0) -> TrainState:
    torch.manual_seed(0)
    return TrainState(models={"m": torch.nn.Linear(2, 1)}, step=step)


def test_resume_only_from_this_configuration(tmp_path):
    path, lines = tmp_path / "train.pt", []
    resume(_state(), path, "abc", lines.append)  # no file: nothing said, nothing loaded
    _state(step=5).save(path, "abc")
    other = _state()
    resume(other, path, "xyz", lines.append)
    assert other.step == 0 and "another configuration" in lines[-1]
    same = _state()
    resume(same, path, "abc", lines.append)
    assert same.step == 5 and lines[-1] == "resumed train.pt at step 5"
    path.write_bytes(b"not a checkpoint")
    resume(_state(), path, "abc", lines.append)
    assert "ignoring an unreadable checkpoint" in lines[-1]


def test_load_finished_wants_the_last_step_of_this_configuration(tmp_path):
    path = tmp_path / "train.pt"
    with pytest.raises(FileNotFoundError, match="train the unit first"):
        load_finished(path, "abc", 5, remedy="retrain")
    _state(step=4).save(path, "abc")
    with pytest.raises(CheckpointError, match=r"not the finished reconstruct phase .* \(step 4 of 5\)"):
        load_finished(path, "abc", 5, remedy="retrain", what="reconstruct phase")
    with pytest.raises(CheckpointError, match="not the finished run"):
        load_finished(path, "xyz", 4, remedy="retrain")
    assert load_finished(path, "abc", 4, remedy="retrain")["step"] == 4
