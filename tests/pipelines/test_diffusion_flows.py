"""The `train_single` / `train_joint` flows under the Prefect test harness, and fast stage failures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from syncvp.config.loader import read_yaml
from tests.training.diffusion_setup import setup

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_diffusion_flows_write_their_outputs(tiny_params, prefect_harness):
    import torch

    from pipelines.train_joint import train_joint
    from pipelines.train_single import train_single
    from syncvp.models.diffusion_file import load_diffusion_model

    p = setup(tiny_params)
    ds = p.datasets["synthetic"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for unit in p.pipeline.single:
            metrics = train_single(unit, ds, p.unet, p.diffusion, p.train_single, p.run, p.paths)
            out = p.paths.model_dir(unit)
            assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
            assert load_diffusion_model(out / "diffusion.pt", kind="single").meta["step"] == p.train_single.steps
        metrics = train_joint("synthetic", ds, p.unet, p.diffusion, p.joint, p.train_joint, p.run, p.paths)
    finally:
        torch.set_num_threads(threads)
    out = p.paths.model_dir("synthetic")
    assert metrics["steps"] == p.train_joint.steps and metrics["loss_depth_final"] > 0
    assert load_diffusion_model(out / "joint.pt", kind="joint").meta["init"] == "stage1"
    assert sorted(q.name for q in out.iterdir()) == [
        "dvclive",
        "joint.pt",
        "loss.png",
        "metrics.json",
        "plots",
        "timings.json",
        "work",
    ]
    assert "train.pt" not in {q.name for q in (out / "work").iterdir()}
    curves = out / "dvclive" / "plots" / "metrics"
    assert sorted(q.name for q in curves.iterdir()) == ["loss.tsv", "loss_depth.tsv", "loss_rgb.tsv"]
    assert (curves / "loss_rgb.tsv").read_text().splitlines()[0] == "step\tloss_rgb"
    assert sorted(json.loads((out / "dvclive" / "metrics.json").read_text())) == [
        "loss",
        "loss_depth",
        "loss_rgb",
        "step",
    ]
    assert [q.name for q in (out / "plots").iterdir()] == ["context.tsv"]
    assert [q for q in out.rglob(".*")] == [], "no temporary files left behind"


def _params_file(tmp_path: Path, edit) -> Path:
    data = read_yaml(REPO / "params.yaml")
    edit(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "stage, edit, item, message",
    [
        (
            "train_joint",
            lambda d: d["train_joint"].update(explicit={"rgb": 0.7}),
            "synthetic",
            "train_joint.explicit: probabilities must sum to 1",
        ),
        ("train_joint", lambda d: d["train_joint"].update(init="stage2"), "synthetic", "train_joint.init"),
        ("train_single", lambda d: d["train_single"].update(latents="cached"), "synthetic-rgb", "train_single.latents"),
        ("train_single", lambda d: None, "synthetic-semantic", "not listed in pipeline.single"),
    ],
)
def test_stage_fails_fast_naming_the_key(tmp_path, stage, edit, item, message):
    params = _params_file(tmp_path, edit)
    code = (
        f"import sys; import stages.{stage} as s; from stages._entry import run; "
        f"rc = run(s.SPEC, [{item!r}, '--params', {str(params)!r}]); "
        "print('heavy' if 'prefect' in sys.modules or 'torch' in sys.modules else 'light'); sys.exit(rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr, res.stderr
    assert res.stdout.strip() == "light"
