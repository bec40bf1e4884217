"""The `train_autoencoder` flow under the Prefect test harness, and its stage's fast failures."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from syncvp.config.loader import read_yaml
from tests.training.stores import write_tiny_stores

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_train_autoencoder_flow_writes_its_outputs(tiny_params, prefect_harness):
    import torch

    from pipelines.train_autoencoder import train_autoencoder
    from syncvp.models.autoencoder import load_autoencoder

    write_tiny_stores(tiny_params.paths)
    ae = dataclasses.replace(
        tiny_params.autoencoder, width=16, depth=1, heads=2, head_dim=8, axis_heads=1, axis_head_dim=8, axis_mlp=16
    )
    train = dataclasses.replace(
        tiny_params.train_autoencoder,
        steps=4,
        batch_size=2,
        eval_every=2,
        eval_clips=2,
        checkpoint_every=2,
        log_every=2,
    )
    unit = "synthetic-depth-context"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        metrics = train_autoencoder(
            unit,
            tiny_params.datasets["synthetic"],
            ae,
            train,
            dataclasses.replace(tiny_params.run, device="cpu"),
            tiny_params.paths,
            None,
        )
    finally:
        torch.set_num_threads(threads)
    out = tiny_params.paths.model_dir(unit)
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
    assert metrics["steps"] == 4 and 0 < metrics["ssim"] <= 1
    model = load_autoencoder(out / "autoencoder.pt")
    assert model.spec.channels == 1 and model.spec.frames == tiny_params.datasets["synthetic"].context_frames
    assert (out / "reconstruction.png").stat().st_size > 0
    # the curves, logged with DVCLive by the flow: one step,<name> file each, and the latest values
    curves = out / "dvclive" / "plots" / "metrics"
    assert sorted(p.name for p in curves.iterdir()) == ["l1.tsv", "loss.tsv", "psnr.tsv", "ssim.tsv"]
    rows = (curves / "psnr.tsv").read_text().splitlines()
    assert rows[0] == "step\tpsnr" and [r.split("\t")[0] for r in rows[1:]] == ["0", "2", "4"]
    assert [r.split("\t")[0] for r in (curves / "loss.tsv").read_text().splitlines()] == ["step", "2", "4"]
    # the latest values, less those metrics.json reports (psnr, ssim, l1): no name twice in `dvc metrics show`
    latest = json.loads((out / "dvclive" / "metrics.json").read_text())
    assert set(latest) == {"loss", "step"} and latest["step"] == 4 and isinstance(latest["loss"], float)
    assert not (out / "plots").exists() and not (out / "dvclive" / "dvc.yaml").exists()
    assert [p.name for p in (out / "work").iterdir()] == ["status.json"]
    assert [p for p in out.rglob(".*")] == [], "no temporary files left behind"


def _params_file(tmp_path: Path, edit) -> Path:
    data = read_yaml(REPO / "params.yaml")
    edit(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    "edit, item, message",
    [
        (
            lambda d: d["autoencoder"].update(head_dim=6),
            "synthetic-rgb-future",
            "autoencoder.head_dim: must be a positive multiple of 4",
        ),
        (
            lambda d: d["autoencoder"].update(patch_size=5),
            "synthetic-rgb-future",
            "autoencoder.patch_size: 5 does not divide the resolution 32x32",
        ),
        (
            lambda d: d["train_autoencoder"]["gan"].update(enabled=True, steps=0),
            "synthetic-rgb-future",
            "train_autoencoder.gan.steps: must be >= 1 when enabled",
        ),
        (lambda d: None, "synthetic-rgb-past", "'synthetic-rgb-past' is not listed in pipeline.autoencoders"),
    ],
)
def test_stage_fails_fast_naming_the_key(tmp_path, edit, item, message):
    params = _params_file(tmp_path, edit)
    code = (
        "import sys; import stages.train_autoencoder as s; from stages._entry import run; "
        f"rc = run(s.SPEC, [{item!r}, '--params', {str(params)!r}]); "
        "print('heavy' if 'prefect' in sys.modules or 'torch' in sys.modules else 'light'); sys.exit(rc)"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr, res.stderr
    assert res.stdout.strip() == "light"
