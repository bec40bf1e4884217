"""benchmarks.optimizer: one row per AdamW implementation, checked against the per-tensor loop."""

from __future__ import annotations

import torch

from benchmarks import optimizer


def test_every_implementation_is_timed_and_checked_against_the_loop():
    rows = {r["implementation"]: r for r in optimizer.measure("tiny", "cpu", repeats=2, check_steps=2)}
    assert list(rows) == ["loop", "foreach", "fused", "ours (loop)"]
    assert all(r["step_ms"] > 0 and r["speedup_vs_loop"] > 0 for r in rows.values())
    # foreach runs the loop's operations on lists: the same bits; ours is the loop on CPU
    assert rows["loop"]["max_diff_vs_loop"] == rows["foreach"]["max_diff_vs_loop"] == 0
    assert rows["ours (loop)"]["max_diff_vs_loop"] == 0
    # fused reorders the arithmetic: close, at rounding level
    assert rows["fused"]["max_diff_vs_loop"] < 1e-6
    # one operator per parameter tensor and operation in the loop; a couple in all when fused
    n_tensors = len(optimizer.joint_parameters("tiny", "cpu"))
    assert rows["loop"]["aten_ops_top"] >= 5 * n_tensors > rows["foreach"]["aten_ops_top"]
    assert rows["fused"]["aten_ops_top"] <= 4
    text = optimizer.table(list(rows.values()), "header")
    assert text.splitlines()[0] == "header" and "| fused |" in text and torch.__version__
