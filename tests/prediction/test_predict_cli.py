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
from syncvp.io.model_space import model_to_image
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
        (
            lambda d: [p.unlink() for p in sorted((d / "depth").glob("*.png"))[1:]],
            "needs at least 2 (the last ones are used): add frames to that folder of --input",
        ),
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


def _run(files, tmp_path, *extra: str, frames: str = "5") -> int:
    inputs = _frames(tmp_path / "in")
    return main(["predict", *files, "--input", str(inputs), "--out", str(tmp_path / "out"), "--frames", frames, *extra])


def _sampling(steps: int):
    from syncvp.config import load_params

    return dataclasses.replace(load_params(REPO / "params.yaml").sampling, steps=steps)


def test_progress_events_count_every_step_of_every_chunk(files, tmp_path):
    """5 frames in chunks of 3 = 2 chunks, 4 DDIM steps each: 8 events, 1..8 of 8."""
    events = []
    model, aes = files[3], dict(_pair(a) for a in files[5:])
    syncvp.predict_folder(
        _frames(tmp_path / "in"),
        tmp_path / "out",
        model=model,
        autoencoders=aes,
        sampling=_sampling(4),
        future=5,
        trajectories=2,
        progress=events.append,
    )
    assert [(e.done, e.total) for e in events] == [(i, 8) for i in range(1, 9)]
    assert [e.message for e in events] == ["chunk 1/2"] * 4 + ["chunk 2/2"] * 4


def test_progress_bar_on_a_terminal_and_lines_in_a_log():
    import io

    from syncvp.__main__ import PredictProgress
    from syncvp.progress import ProgressEvent

    events = [
        ProgressEvent(
            "predict", i, 6, metrics={"chunk": (i - 1) // 3 + 1, "chunks": 2}, message=f"chunk {(i - 1) // 3 + 1}/2"
        )
        for i in range(1, 7)
    ]
    stream = io.StringIO()
    bar = PredictProgress("predict", stream=stream, terminal=True)
    for e in events:
        bar(e)
    assert bar.bar.n == 6 and bar.bar.total == 6 and bar.lines == 0
    bar.close()
    assert "6/6" in stream.getvalue() and "chunk 2/2" in stream.getvalue()

    stream = io.StringIO()
    log = PredictProgress("predict", stream=stream, terminal=False)
    for e in events:
        log(e)
    log.close()
    assert stream.getvalue().splitlines() == [
        "predict: chunk 1/2 done (3/6 steps)",
        "predict: chunk 2/2 done (6/6 steps)",
    ]


def test_predict_cli_reports_loading_and_chunks(files, tmp_path, capsys):
    assert _run(files, tmp_path, "--device", "cpu") == 0
    out, err = capsys.readouterr()
    assert "device: cpu (--device cpu)" in out
    assert f"loading {files[3]} on cpu" in out
    assert "predicting 5 frames x 1 trajectory(ies) in 2 chunk(s) of 3" in out
    # the repo's sampling section (steps: 1): one step per chunk; stderr is not a terminal here
    assert [line for line in err.splitlines() if "done" in line] == [
        "predict (1 trajectory(ies)): chunk 1/2 done (1/2 steps)",
        "predict (1 trajectory(ies)): chunk 2/2 done (2/2 steps)",
    ]


@pytest.mark.parametrize(
    "extra, message",
    [
        (("--frames", "0"), "error: --frames must be >= 1, got 0 (e.g. --frames 16)\n"),
        (("--frames", "-3"), "error: --frames must be >= 1, got -3 (e.g. --frames 16)\n"),
        (
            ("--frames", "2", "--trajectories", "0"),
            "error: --trajectories must be >= 1, got 0 (e.g. --trajectories 1)\n",
        ),
        (
            ("--frames", "2", "--present", "rgb,semantic"),
            "error: --present rgb,semantic: 'semantic' is not a modality of the model (rgb, depth); "
            "pass a comma-separated subset, e.g. --present rgb\n",
        ),
    ],
)
def test_predict_cli_flag_errors_are_exact(files, tmp_path, capsys, extra, message):
    inputs = _frames(tmp_path / "in")
    assert main(["predict", *files, "--input", str(inputs), "--out", str(tmp_path / "out"), *extra]) == 2
    assert capsys.readouterr().err == message
    assert not (tmp_path / "out").exists()


def test_wrong_size_error_names_the_resize_flag(files, tmp_path, capsys):
    inputs = _frames(tmp_path / "in", size=16)
    assert main(["predict", *files, "--input", str(inputs), "--out", str(tmp_path / "out"), "--frames", "2"]) == 2
    err = capsys.readouterr().err
    assert "16x16 pixels, the model takes 8x8; resize them, or pass --resize area" in err
    assert "also bilinear, bicubic, nearest) to centre-crop and resize" in err


def test_out_folder_of_other_files_is_refused_and_a_prediction_is_replaced(files, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _run(files, tmp_path) == 2
    assert capsys.readouterr().err == (
        f"error: --out {out} holds files that are not a prediction (it would be replaced): pass a new folder\n"
    )
    (out / "notes.txt").unlink()
    assert _run(files, tmp_path, frames="5") == 0
    assert _run(files, tmp_path, frames="2") == 0  # a shorter prediction replaces the longer one whole
    assert len(list((out / "rgb" / "traj0").glob("*.png"))) == 2


def test_device_defaults_to_auto_as_run_device(monkeypatch, capsys):
    import argparse

    import torch

    from syncvp.__main__ import RESIZE_MODES, _device, _predict_parser
    from syncvp.prediction import api
    from syncvp.runtime import resolve_device

    parser = argparse.ArgumentParser()
    _predict_parser(parser.add_subparsers())
    args = parser.parse_args(["predict", "--input", "i", "--out", "o"])
    assert args.device == "auto"
    assert _device("auto") == str(resolve_device("auto"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _device("auto") == "cpu"
    with pytest.raises(Exception, match=r"^--device cuda: no CUDA device is available; pass --device auto or"):
        _device("cuda")
    assert RESIZE_MODES == api.RESIZE_MODES


def test_depth_is_a_16_bit_png_with_format_json(files, tmp_path):
    from syncvp.prediction import formats

    model, aes = files[3], dict(_pair(a) for a in files[5:])
    inputs = _frames(tmp_path / "in")
    out = syncvp.predict_folder(
        inputs, tmp_path / "out", model=model, autoencoders=aes, sampling=_sampling(2), future=4, trajectories=2
    )
    depth = tmp_path / "out" / "depth"
    fmt = formats.read_format(depth)
    assert (fmt["png"], fmt["dtype"], fmt["channels"]) == ("gray16", "uint16", 1) and "physical" not in fmt
    png = cv2.imread(str(depth / "traj1" / "0003.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape == (8, 8)
    x = formats.model_values(png[..., None], fmt)
    # the returned uint8 frames are the same prediction rounded to 8 bits
    assert np.abs(model_to_image(x).astype(int) - out["depth"][1, 3].astype(int)).max() <= 1
    rgb = cv2.imread(str(tmp_path / "out" / "rgb" / "traj1" / "0003.png"), cv2.IMREAD_UNCHANGED)
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    np.testing.assert_array_equal(rgb[..., ::-1], out["rgb"][1, 3])


def test_a_prediction_reads_back_as_input(files, tmp_path):
    """The written frames (16-bit depth included) are valid input: depth is read at 8 bits (v / 257)."""
    from syncvp.prediction.api import read_frames
    from syncvp.prediction.load import load_predictor

    model, aes = files[3], dict(_pair(a) for a in files[5:])
    syncvp.predict_folder(
        _frames(tmp_path / "in"), tmp_path / "out", model=model, autoencoders=aes, sampling=_sampling(1), future=3
    )
    again = tmp_path / "again"
    for m in ("rgb", "depth"):
        (again / m).mkdir(parents=True)
        for p in sorted((tmp_path / "out" / m / "traj0").glob("*.png")):
            (again / m / p.name).write_bytes(p.read_bytes())
    predictor = load_predictor(model, aes, _sampling(1))
    frames = read_frames(again, predictor)
    v16 = cv2.imread(str(tmp_path / "out" / "depth" / "traj0" / "0002.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(frames["depth"][-1, ..., 0], np.round(v16 / 257.0).astype(np.uint8))
    assert frames["rgb"].shape == (2, 8, 8, 3)


def test_dataset_summary_gives_depth_in_metres(files, tmp_path, monkeypatch, capsys):
    """With --dataset, format.json takes near/far from the dataset's summary.json (paths.processed)."""
    import json

    from syncvp.prediction import formats

    summary = tmp_path / "data" / "processed" / "synthetic" / "summary.json"  # params.yaml paths, relative
    summary.parent.mkdir(parents=True)
    depth = {"kind": "image", "channels": 1, "encoding": "inverse_depth", "depth_near": 2.0, "depth_far": 10.0}
    summary.write_text(json.dumps({"train": {"modalities": {"rgb": {"kind": "image", "channels": 3}, "depth": depth}}}))
    monkeypatch.chdir(tmp_path)
    assert _run(files, tmp_path, "--dataset", "synthetic") == 0
    assert f"reading the modality encodings of synthetic from {Path('data/processed/synthetic/summary.json')}" in (
        capsys.readouterr().out
    )
    fmt = formats.read_format(tmp_path / "out" / "depth")
    assert fmt["physical"] == {"kind": "inverse_depth", "units": "m", "near": 2.0, "far": 10.0}
    v = cv2.imread(str(tmp_path / "out" / "depth" / "traj0" / "0000.png"), cv2.IMREAD_UNCHANGED)
    z = formats.to_physical(v, fmt)
    np.testing.assert_allclose(1 / z, 1 / 10.0 + v / 65535 * (1 / 2.0 - 1 / 10.0))
    assert z.min() >= 2.0 and z.max() <= 10.0


def test_two_trajectories_write_the_spread_maps(files, tmp_path):
    model, aes = files[3], dict(_pair(a) for a in files[5:])
    out = syncvp.predict_folder(
        _frames(tmp_path / "in"), tmp_path / "out", model=model, autoencoders=aes, sampling=_sampling(1), future=4,
        trajectories=2,
    )  # fmt: skip
    with np.load(tmp_path / "out" / "spread.npz") as data:
        assert int(data["trajectories"]) == 2 and list(data["lead"]) == [1, 2, 3, 4]
        assert str(data["units.rgb"]) == "0-255" and data["rgb"].shape == (4, 8, 8)
        # rgb is written at 8 bits: the spread of the returned frames, |a - b| / sqrt(2) per channel
        diff = out["rgb"][0].astype(float) - out["rgb"][1].astype(float)
        np.testing.assert_allclose(data["rgb"], np.sqrt((diff**2 / 2).mean(axis=-1)), atol=1e-4)
        assert data["depth"].shape == (4, 8, 8) and np.all(data["depth"] >= 0)
    assert iio.imread(tmp_path / "out" / "spread.png").shape[0] > 2 * 8
    syncvp.predict_folder(
        _frames(tmp_path / "in"), tmp_path / "one", model=model, autoencoders=aes, sampling=_sampling(1), future=4
    )
    assert not (tmp_path / "one" / "spread.npz").exists()  # one trajectory: no spread


def test_spread_of_a_field_is_in_its_physical_units():
    from syncvp.prediction import formats
    from syncvp.prediction.spread import spread_of

    store = {"kind": "field", "units": "K", "norm_min": 250.0, "norm_max": 300.0}
    fmt = formats.frame_format("t2m", 1, store)
    video = np.zeros((2, 1, 1, 1, 1), np.float32)
    video[1] = 0.2  # 275 K and 280 K
    spread, units = spread_of(video, fmt)
    assert units == "K" and spread.shape == (1, 1, 1)
    assert spread[0, 0, 0] == pytest.approx(5.0 / np.sqrt(2), abs=1e-2)  # std of (275, 280), ddof 1
    with pytest.raises(ValueError, match="N >= 2"):
        spread_of(video[:1], fmt)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--present", "rgb,depth"], "--present rgb,depth: give some but not all of synthetic's modalities"),
        (["--present", "semantic"], "--present semantic: give some but not all"),
        (["--present", "rgb", "--trajectories", "0"], "--trajectories must be >= 1"),
        (["--present", "rgb", "--dataset", "cityscapes"], "--dataset 'cityscapes' is not in"),
    ],
)
def test_complete_cli_errors_are_one_line(tmp_path, capsys, extra, message):
    args = ["complete", "--params", str(REPO / "params.yaml"), "--dataset", "synthetic"]
    args += ["--input", str(tmp_path / "in"), "--out", str(tmp_path / "out"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_predict_cli_compiles_the_denoiser_with_run_compile(files, tmp_path, capsys, monkeypatch):
    """params `run.compile: true` reaches the sampler's denoiser; a compiler that fails leaves one
    warning on stderr and the eager prediction."""
    from syncvp.training import fastpath
    from tests.training.test_compile_guard import Backend

    backend = Backend()
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", backend)
    inputs = _frames(tmp_path / "in")
    text = (REPO / "params.yaml").read_text()
    assert "\n  compile: false " in text
    params = tmp_path / "compile.yaml"
    params.write_text(text.replace("\n  compile: false ", "\n  compile: true ", 1))
    base = ["predict", *files, "--input", str(inputs), "--frames", "2", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "eager")]) == 0
    assert "denoiser speed options" not in capsys.readouterr().out and backend.calls == 0
    assert main([*base, "--params", str(params), "--out", str(tmp_path / "compiled")]) == 0  # the last --params wins
    out, err = capsys.readouterr()
    assert "denoiser speed options (params run): compile" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert backend.calls == 1 and len(warnings) == 1 and "torch.compile failed for JointUNet" in warnings[0]
    pngs = sorted((tmp_path / "eager").rglob("*.png"))
    assert len(pngs) == 4  # 2 modalities x 2 frames
    for png in pngs:
        compiled = tmp_path / "compiled" / png.relative_to(tmp_path / "eager")
        np.testing.assert_array_equal(
            cv2.imread(str(compiled), cv2.IMREAD_UNCHANGED), cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        )


def test_predict_cli_passes_run_cuda_graphs_to_the_denoiser(files, tmp_path, capsys, monkeypatch):
    """params `run.cuda_graphs: true` reaches the sampler (one GraphedDenoiser per chunk); on CPU it
    is a pass-through: the prediction is the plain one."""
    from syncvp.prediction import rollout
    from tests.prediction.test_cuda_graph_sampler import Recording

    Recording.made = []
    monkeypatch.setattr(rollout, "GraphedDenoiser", Recording)
    inputs = _frames(tmp_path / "in")
    text = (REPO / "params.yaml").read_text()
    assert "\n  cuda_graphs: false " in text
    params = tmp_path / "graphs.yaml"
    params.write_text(text.replace("\n  cuda_graphs: false ", "\n  cuda_graphs: true ", 1))
    base = ["predict", *files, "--input", str(inputs), "--frames", "2", "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert "denoiser speed options" not in capsys.readouterr().out and Recording.made == []
    assert main([*base, "--params", str(params), "--out", str(tmp_path / "graphs")]) == 0  # the last --params wins
    assert "denoiser speed options (params run): cuda_graphs" in capsys.readouterr().out
    assert len(Recording.made) == 1 and Recording.made[0].calls > 0
    pngs = sorted((tmp_path / "plain").rglob("*.png"))
    assert len(pngs) == 4  # 2 modalities x 2 frames
    for png in pngs:
        graphed = tmp_path / "graphs" / png.relative_to(tmp_path / "plain")
        np.testing.assert_array_equal(
            cv2.imread(str(graphed), cv2.IMREAD_UNCHANGED), cv2.imread(str(png), cv2.IMREAD_UNCHANGED)
        )
