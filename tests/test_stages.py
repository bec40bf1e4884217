"""Stage entry points: bad params fail fast, naming the key, before Prefect loads; no output."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from syncvp.__main__ import _fanout_yaml
from syncvp.config.loader import read_yaml

REPO = Path(__file__).resolve().parents[1]


def run_stage(args, cwd):
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(cwd)},
    )


def write_params(tmp_path, edit) -> Path:
    data = read_yaml(REPO / "params.yaml")
    for key in ("raw", "interim", "processed", "models", "eval"):
        data["paths"][key] = str(tmp_path / key)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    data["pipeline"] = yaml.safe_load(_fanout_yaml(str(path)))["pipeline"]  # paths moved: re-derive
    edit(data)
    path.write_text(yaml.safe_dump(data))
    return path


def test_bad_params_fail_before_work(tmp_path):
    def edit(d):
        d["datasets"]["synthetic"]["source"]["frames"] = -1

    params = write_params(tmp_path, edit)
    code = (
        "import sys, runpy; sys.argv=['x', 'synthetic', '--params', %r];"
        "import stages.synthesize as s; from stages._entry import run; rc = run(s.SPEC, sys.argv[1:]);"
        "print('prefect loaded' if 'prefect' in sys.modules or 'torch' in sys.modules else 'clean'); sys.exit(rc)"
    ) % str(params)
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert "datasets.synthetic.source.frames: must be >= 2" in res.stderr
    assert res.stdout.strip() == "clean"
    assert not (tmp_path / "raw").exists()


def test_unknown_key_and_unknown_item(tmp_path):
    params = write_params(tmp_path, lambda d: d["run"].update(seeed=1))
    res = run_stage(["stages.prepare", "synthetic", "--params", str(params)], REPO)
    assert res.returncode == 2 and "run.seeed: is not a known key" in res.stderr
    params = write_params(tmp_path, lambda d: None)
    res = run_stage(["stages.prepare", "cityscapes", "--params", str(params)], REPO)
    assert res.returncode == 2 and "'cityscapes' is not listed in pipeline.prepare" in res.stderr
    assert not (tmp_path / "processed").exists()


def _missing_raw_params(tmp_path) -> Path:
    return write_params(tmp_path, lambda d: None)  # paths under tmp_path: no raw frames there


@pytest.mark.slow
def test_a_failing_stage_prints_one_line_and_logs_the_traceback(tmp_path):
    params = _missing_raw_params(tmp_path)
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / ".prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }
    res = subprocess.run(
        [sys.executable, "-m", "stages.prepare", "synthetic", "--params", str(params)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 1, res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    log = tmp_path / ".prefect" / "errors" / "prepare@synthetic.log"
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: prepare@synthetic: FileNotFoundError: {tmp_path / 'raw' / 'synthetic'} does not exist: "
        f"run `dvc repro synthesize@synthetic` first (traceback in {log}; --debug prints it)"
    ]
    text = log.read_text()
    assert text.startswith("Traceback (most recent call last)") and "FileNotFoundError" in text
    assert not (tmp_path / "processed").exists()


def test_debug_lets_the_error_through(tmp_path, prefect_harness):
    import stages.prepare
    from stages._entry import run

    params = _missing_raw_params(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist: run `dvc repro synthesize@synthetic` first"):
        run(stages.prepare.SPEC, ["synthetic", "--params", str(params), "--debug"])


def test_console_formatter_drops_the_traceback_without_touching_the_record():
    from stages._entry import _WithoutTraceback

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed: %s", ("it",), sys.exc_info()
        )
    plain = logging.Formatter("%(levelname)s %(message)s")
    assert "Traceback" in plain.format(record)
    record.exc_text = None
    assert _WithoutTraceback(plain).format(record) == "ERROR failed: it"
    assert record.exc_info is not None and "Traceback" in plain.format(record)  # other handlers keep it
