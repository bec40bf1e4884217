"""benchmarks.checkpointing: per row, a fresh process for the time and one for the memory; the
memory column sees what checkpointing saves."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import checkpointing


@pytest.mark.slow
def test_checkpointing_rows_show_less_activation_memory_for_more_time():
    args = argparse.Namespace(size="tiny", work="joint", steps=1, device="cpu", threads=1)
    off, on = (checkpointing.run_row(args, 8, flag) for flag in (False, True))
    assert off["checkpointing"] is False and on["checkpointing"] is True
    assert all(r["step_s"] > 0 and r["peak_mib"] > 0 for r in (off, on))
    # the tiny joint model at batch 8 keeps tens of MiB for its backward pass; a block under
    # checkpointing keeps its inputs only
    assert off["activations_mib"] > 20
    assert on["activations_mib"] < off["activations_mib"] / 2
    text = checkpointing.table([off, on])
    assert "| 8 | on |" in text and text.count("\n") == 3


def test_bad_arguments_are_refused_before_any_work(capsys):
    for argv, message in [
        (["--steps", "0"], "--steps must be >= 1"),
        (["--batches", "1,x"], "comma-separated integers"),
        (["--batches", "0"], "must be >= 1"),
    ]:
        with pytest.raises(SystemExit):
            checkpointing.main(argv)
        assert message in capsys.readouterr().err
