"""`python -m syncvp predict` and `syncvp.predict`: frame folders in, PNGs and a GIF out; clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np
import pytest

import syncvp
from syncvp.__main__ import main
from syncvp.config import RolePair
from tests.evaluation.conftest import write_models

REPO = Path(__file__).resolve().parents[2]


def _frames(folder: Path, count: int = 3, size: int = 8, gray_as_rgb: bool = False) -> Path:
    rng = np.random.default_rng(0)
    for m, channels in (("rgb", 3), ("depth", 1)):
        (folder / m).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = rng.integers(0, 256, (size, size, channels), dtype=np.uint8)
            if channels == 1 and gray_as_rgb:
                img = np.repeat(img, 3, axis=2)
            cv2.imwrite(str(folder / m / f"{i:03d}.png"), img)
    return folder


@pytest.fixture
def files(tiny_params):
    paths = tiny_params.paths
    write_models(paths)
    aes = [
        f"{m}={paths.model_dir(f'synthetic-{m}-context') / 'autoencoder.pt'},"
        f"{paths.model_dir(f'synthetic-{m}-future') / 'autoencoder.pt'}"
        for m in ("rgb", "depth")
    ]
    return [
        "--params",
        str(REPO / "params.yaml"),
        "--model",
        str(paths.models / "synthetic" / "joint.pt"),
        "--autoencoders",
        *aes,
    ]


def test_predict_cli_writes_frames_and_gif(files, tmp_path, capsys):
    inputs = _frames(tmp_path / "in", gray_as_rgb=True)
    out = tmp_path / "out"
    assert (
        main(["predict", *files, "--input", str(inputs), "--out", str(out), "--frames", "5", "--trajectories", "2"])
        == 0
    )
    for m, channels in (("rgb", 3), ("depth", 1)):
        for k in range(2):
            pngs = sorted((out / m / f"traj{k}").glob("*.png"))
            assert len(pngs) == 5
            assert cv2.imread(str(pngs[0]), cv2.IMREAD_UNCHANGED).shape[:2] == (8, 8)
    gif = iio.imread(out / "prediction.gif")
    assert gif.shape[0] == 2 + 5  # context frames, then the predicted ones
    assert "prediction.gif" in capsys.readouterr().out


def _pair(arg: str) -> tuple[str, RolePair]:
    """`MOD=CONTEXT,FUTURE` (the CLI's --autoencoders item) -> (MOD, its files)."""
    modality, _, files = arg.partition("=")
    context, future = files.split(",")
    return modality, RolePair(context=context, future=future)


def test_predict_api_is_deterministic_and_missing_modality_runs(files, tmp_path):
    inputs = _frames(tmp_path / "in")
    model, aes = files[3], dict(_pair(a) for a in files[5:])
    from syncvp.config import load_params

    sampling = dataclasses.replace(load_params(REPO / "params.yaml").sampling, steps=4)

    def run(out, **kw):
        return syncvp.predict_folder(
            inputs, tmp_path / out, model=model, autoencoders=aes, sampling=sampling, future=4, **kw
        )

    a, b = run("a", seed=3), run("b", seed=3)
    assert all(np.array_equal(a[m], b[m]) for m in a) and a["depth"].shape == (1, 4, 8, 8, 1)
    only_depth = run("c", seed=3, present=["depth"])
    assert not np.array_equal(only_depth["rgb"], a["rgb"])


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: [p.unlink() for p in (d / "rgb").glob("*.png")] and (d / "rgb").rmdir(), "rgb is missing"),
        (lambda d: [p.unlink() for p in sorted((d / "depth").glob("*.png"))[1:]], "needs at least 2"),
        (
            lambda d: cv2.imwrite(
                str(d / "depth" / "009.png"),
                np.dstack([np.zeros((8, 8), np.uint8), np.full((8, 8), 9, np.uint8), np.zeros((8, 8), np.uint8)]),
            ),
            "takes 1",
        ),
        (lambda d: cv2.imwrite(str(d / "rgb" / "009.png"), np.zeros((12, 8, 3), np.uint8)), "12x8"),
    ],
)
def test_predict_cli_clear_errors(files, tmp_path, capsys, change, message):
    inputs = _frames(tmp_path / "in")
    change(inputs)
    assert main(["predict", *files, "--input", str(inputs), "--out", str(tmp_path / "out"), "--frames", "2"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_predict_cli_names_a_truncated_model_file_in_one_line(files, tmp_path, capsys):
    inputs = _frames(tmp_path / "in")
    future_ae = Path(files[-1].split(",")[1])  # the depth future autoencoder
    future_ae.write_bytes(future_ae.read_bytes()[: future_ae.stat().st_size // 2])  # a copy cut short
    assert main(["predict", *files, "--input", str(inputs), "--out", str(tmp_path / "out"), "--frames", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: {future_ae} is not a model file this project wrote (truncated or foreign: ")
    assert err.rstrip().endswith("; rerun `dvc repro train_autoencoder@synthetic-depth-future` or delete it")
    assert not (tmp_path / "out").exists()


def test_resize_fits_other_sizes(files, tmp_path):
    inputs = _frames(tmp_path / "in", size=16)
    assert (
        main(
            [
                "predict",
                *files,
                "--input",
                str(inputs),
                "--out",
                str(tmp_path / "out"),
                "--frames",
                "2",
                "--resize",
                "area",
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "out" / "rgb" / "traj0").glob("*.png"))) == 2
