"""The GPU suite's structure, run in --smoke mode (tiny config, CPU): one JSON line per step and
per measured row, a step that hangs is killed at its timeout and recorded so while the next step
still runs, steps past the budget are recorded as skipped, and the summary table is printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def suite(out: Path, *args: str) -> tuple[str, list[dict]]:
    cmd = [sys.executable, "-m", "benchmarks.gpu_suite", "--out", str(out), "--smoke", *args]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=True)
    lines = (out / "gpu_suite.jsonl").read_text().splitlines()
    return proc.stdout, [json.loads(line) for line in lines]  # every line is valid JSON


def steps(rows: list[dict]) -> dict[str, dict]:
    return {r["step"]: r for r in rows if r["kind"] == "step"}


def test_a_hanging_step_times_out_and_the_next_step_still_runs(tmp_path):
    # 12 s: the step's process must import torch and write its first row before it hangs, which
    # takes several seconds on a loaded 2-core machine
    stdout, rows = suite(tmp_path, "--steps", "hang,env", "--timeout", "hang=12", "--budget-s", "180")
    done = steps(rows)
    assert list(done) == ["hang", "env"]
    assert done["hang"]["status"] == "timeout" and 11.5 < done["hang"]["seconds"] < 60
    assert done["env"]["status"] == "ok"
    # the hanging step's own row, written before it hung, is kept
    assert [r["note"] for r in rows if r["step"] == "hang" and r["kind"] == "row"] == ["hang starts"]
    (env,) = [r for r in rows if r["step"] == "env" and r["kind"] == "row"]
    assert env["torch"] and env["device"] == "cpu" and env["matmul_tflops"] > 0
    assert "step" in stdout and "timeout" in stdout and "torch=" in stdout  # the summary table


def test_steps_past_the_budget_are_recorded_as_skipped(tmp_path):
    stdout, rows = suite(tmp_path, "--steps", "hang,env", "--timeout", "hang=30", "--budget-s", "3")
    done = steps(rows)
    assert done["hang"]["status"] == "timeout" and done["hang"]["timeout_s"] == pytest.approx(3, abs=0.5)
    assert done["env"]["status"] == "skipped" and "budget" in done["env"]["reason"]
    assert "skipped" in stdout


@pytest.mark.slow
def test_the_smoke_suite_measures_every_row(tmp_path):
    names = ["env", "train_joint", "sampling", "checkpointing", "launches", "optimizer"]
    stdout, rows = suite(tmp_path, "--steps", ",".join(names), "--budget-s", "240")
    assert {name: r["status"] for name, r in steps(rows).items()} == dict.fromkeys(names, "ok")
    train = [r for r in rows if r["step"] == "train_joint" and "samples_per_s" in r]
    assert [r["batch"] for r in train] == [1, 2, 4, 8] and all(r["flops_per_step"] > 0 for r in train)
    assert {r["optimizer"] for r in train} == {"loop"}  # on CPU; fused on CUDA
    opt = {r["implementation"]: r for r in rows if r["step"] == "optimizer" and r["kind"] == "row"}
    assert list(opt) == ["loop", "foreach", "fused", "ours (loop)"]
    assert opt["ours (loop)"]["max_diff_vs_loop"] == 0 and opt["foreach"]["max_diff_vs_loop"] == 0
    checks = [r for r in rows if r.get("check")]
    assert [r["check"].split(" == ")[0] for r in checks] == ["precast denoiser"] + ["graph denoiser"] * 3
    assert all(r["passed"] for r in checks)
    # on CPU the graph path calls the denoiser plainly: the same output, the same samples
    assert all(r["relative_l2"] == 0 and r["sample_max_abs_diff"] == 0 for r in checks)
    assert {r["activation_checkpointing"] for r in rows if r["step"] == "checkpointing" and r["kind"] == "row"} == {
        False,
        True,
    }
    assert all(r["aten_ops_top"] > 0 for r in rows if r["step"] == "launches" and r["kind"] == "row")


@pytest.mark.slow
def test_the_smoke_suite_runs_the_compiled_steps(tmp_path):
    """Compiled sampling alone and inside a CUDA graph (a plain call on CPU), each checked
    against eager, and a compiled training step, whole and block by block; backend `eager`
    (--smoke), so the outputs equal eager's exactly."""
    names = ["sampling_compiled", "compile_joint", "compile_regional"]
    _, rows = suite(tmp_path, "--steps", ",".join(names), "--budget-s", "240")
    assert {name: r["status"] for name, r in steps(rows).items()} == dict.fromkeys(names, "ok")
    sampled = [(r["path"], r["batch"]) for r in rows if r["step"] == "sampling_compiled" and "path" in r]
    assert sampled == [("compiled", 1), ("compiled+graph", 1), ("compiled", 2), ("compiled+graph", 2)]
    assert all(r["seconds"] > 0 for r in rows if "path" in r)
    checks = [r for r in rows if r.get("check")]
    assert [r["check"].split()[0] for r in checks] == ["compiled", "compiled+graph"] * 2
    assert all(r["passed"] and r["relative_l2"] == 0 and r["sample_max_abs_diff"] == 0 for r in checks)
    assert all(r["captured"] is False for r in checks if r["check"].startswith("compiled+graph"))  # CPU
    (compiled,) = [r for r in rows if r["step"] == "compile_joint" and r["kind"] == "row"]
    assert compiled["passed"] and not compiled["fell_back"] and compiled["step_s"] > 0
    (regional,) = [r for r in rows if r["step"] == "compile_regional" and r["kind"] == "row"]
    assert regional["blocks"] > 10 and regional["fell_back"] == 0 and regional["step_s"] > 0
    assert 0 < regional["unique_graphs"] < regional["blocks"]  # blocks of one class and shape share a graph


def test_the_gpu_tests_step_runs_every_file_that_holds_gpu_tests():
    """A `gpu` test in a file missing from GPU_TEST_FILES would never run on a lent GPU."""
    import re

    from benchmarks.gpu_suite import GPU_TEST_FILES, REPO

    marked = re.compile(r"^\s*@pytest\.mark\.gpu\b", re.M)
    holding = sorted(
        str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py") if marked.search(p.read_text())
    )
    assert holding and sorted(GPU_TEST_FILES) == holding


def test_the_gpu_tests_step_records_each_test_as_it_finishes(tmp_path):
    _, rows = suite(tmp_path, "--steps", "gpu_tests", "--budget-s", "120")
    assert steps(rows)["gpu_tests"]["status"] == "ok"
    tests = [r for r in rows if r["step"] == "gpu_tests" and "test" in r]
    assert tests and all(r["test"].startswith("tests/") and "::" in r["test"] for r in tests)
    assert {r["outcome"] for r in tests} == {"skipped"}  # no GPU here
    (last,) = [r for r in rows if r["step"] == "gpu_tests" and "pytest_rc" in r]
    assert last["pytest_rc"] == 0 and f"{len(tests)} skipped" in last["summary"]


BLOCKED = ("prefect", "dvc", "dvclive", "lpips", "netCDF4", "cftime", "cdsapi")  # not on the lent GPU machine
COLLECT_BLOCKED = f"""
import importlib.abc, sys
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
sys.meta_path.insert(0, Blocker())
import pytest
from benchmarks.gpu_suite import GPU_TEST_FILES
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-n", "0", "-m", "gpu", *GPU_TEST_FILES]))
"""


def test_the_gpu_test_files_collect_without_the_packages_the_gpu_machine_lacks():
    """The lent GPU machine has torch, numpy, pyyaml and tqdm but not prefect, dvc, lpips,
    netCDF4, ...: a `gpu` test file importing one of them would be a collection error there."""
    from benchmarks.gpu_suite import GPU_TEST_FILES

    proc = subprocess.run(
        [sys.executable, "-c", COLLECT_BLOCKED], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    collected = [ln for ln in proc.stdout.splitlines() if "::" in ln]
    assert {ln.split("::")[0] for ln in collected} == set(GPU_TEST_FILES)


def test_the_sampling_benchmarks_network_predicts_something(tmp_path):
    """A freshly built model predicts 0 for every input (zero-initialised output layers), which
    would make the suite's fast == plain checks compare zeros: its chunk fills those layers."""
    import time

    import torch

    from benchmarks import gpu_suite

    ctx = gpu_suite.Ctx(tmp_path, "sampling", True, time.monotonic() + 60, None, "eager")
    chunk = gpu_suite.Chunk(ctx)
    z = {m: torch.randn(1, chunk.future.channels, chunk.future.length) for m in chunk.mods}
    with torch.no_grad():
        out = chunk.denoiser(1)(z, torch.full((1,), 500))
    assert all(float(v.abs().max()) > 1e-3 for v in out.values())
