"""benchmarks.triton_codegen: inductor's Triton code generator runs on CPU and the stand-in keeps
each kernel's source (in a subprocess: the patch changes inductor's global config)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, torch
from benchmarks.triton_codegen import _patch_inductor
sources = []
_patch_inductor(sources)
def f(x, w):
    return torch.nn.functional.silu(torch.nn.functional.group_norm(x, 2, w)) * 2 + 1
out = torch.compile(f)(torch.randn(2, 4, 8, 8), torch.randn(4))
print(json.dumps({"kernels": len(sources), "jit": all("@triton.jit" in s for _, s in sources)}))
"""


def test_the_triton_code_generator_runs_on_cpu_and_keeps_each_kernel_source():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["kernels"] >= 1 and res["jit"]


def test_a_bad_batch_is_refused():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.triton_codegen", "--batch", "0"], cwd=REPO, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--batch must be >= 1" in proc.stderr
