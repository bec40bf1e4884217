"""`make repro` validates params.yaml before DVC runs (DVC deletes a stage's outputs before the
stage could refuse bad params)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _make_repro(tmp_path: Path, params: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`make repro` in a folder with the repo's Makefile and `params`, its BIN a shim folder whose
    python is this interpreter and whose dvc only records that it was called."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    (tmp_path / "params.yaml").write_text(params)
    shim, called = tmp_path / "bin", tmp_path / "dvc-called"
    shim.mkdir()
    (shim / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shim / "dvc").write_text(f'#!/bin/sh\necho "$@" >> "{called}"\n')
    for f in ("python", "dvc"):
        (shim / f).chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # -o: take the install stamp as up to date (this interpreter already has the project)
    proc = subprocess.run(
        ["make", "-o", ".venv/.installed", "repro", f"BIN={shim}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc, called


def test_bad_params_stop_make_repro_before_dvc(tmp_path):
    text = (REPO / "params.yaml").read_text()
    bad = text.replace("\nsampling:\n  method: ddim", "\nsampling:\n  method: ddpm", 1)
    assert bad != text
    proc, called = _make_repro(tmp_path, bad)
    assert proc.returncode != 0
    assert "params.yaml: sampling.steps: sampling.method ddpm runs all diffusion.timesteps" in proc.stderr, proc.stderr
    assert not called.exists(), "dvc ran although params.yaml is invalid"


def test_valid_params_reach_dvc(tmp_path):
    proc, called = _make_repro(tmp_path, (REPO / "params.yaml").read_text())
    assert called.exists(), proc.stderr
    assert called.read_text().splitlines()[0] == "status -q"
