"""The presets of the paper's other experiments (BAIR, SYNTHIA, ERA5-Land, agriculture): each loads strictly with
the paper's values, prints a params file `check-params` accepts, and a tiny variant of it (same
modalities, channels and frame counts; widths and resolution cut down) runs one training step of a
stage-1 model and of the joint model, and one evaluation batch, on CPU."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from syncvp import presets
from syncvp.config import params_from_dict
from syncvp.config.loader import read_yaml
from syncvp.data import store
from syncvp.evaluation import evaluate, plan_evaluation
from syncvp.training import diffusion_job, diffusion_train
from tests.conftest import with_pipeline
from tests.training.diffusion_setup import write_autoencoders

REPO = Path(__file__).resolve().parents[2]
PRESETS = {"paper_bair": "bair", "paper_synthia": "synthia", "paper_era5": "era5", "paper_agriculture": "agriculture"}
MODALITIES = {
    "bair": ("rgb", "depth"),
    "synthia": ("rgb", "semantic"),
    "era5": ("t2m", "sp"),
    "agriculture": ("rgb", "depth"),
}
RESOLUTION = {"bair": (64, 64), "synthia": (128, 128), "era5": (64, 64), "agriculture": (288, 512)}
FRAMES = {
    "bair": (2, 8, 28),
    "synthia": (2, 8, 28),
    "era5": (2, 8, 28),
    "agriculture": (3, 1, 1),
}  # context, future, rollout
# supp 1.1: patch size P = 4 and C' = 4 up to 128 px, P = 8 and C' = 16 above; width 192 throughout
AUTOENCODER = {"bair": (4, 4, 192), "synthia": (4, 4, 192), "era5": (4, 4, 192), "agriculture": (8, 16, 192)}
FIELD_RANGE = {"t2m": (250.0, 300.0, "K"), "sp": (9.0e4, 1.05e5, "Pa")}
TINY = 32  # pixels of the tiny variant (P = 4: an 8x8 latent grid)
TINY_SIZE = {"agriculture": (32, 48)}  # P = 8: a 4x6 grid, H != W as the paper's 288x512; (TINY, TINY) otherwise

# tiny networks run fastest single-threaded (and stay fast on a busy machine)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@functools.cache
def paper(preset: str):
    return params_from_dict(presets.apply(read_yaml(REPO / "params.yaml"), presets.load(preset)))


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_loads_strictly_with_the_paper_values(preset):
    p, name = paper(preset), PRESETS[preset]
    ds = p.datasets[name]
    assert p.pipeline.train == (name,) and set(p.datasets) == {name}
    assert p.pipeline.joint == {name: tuple(f"{name}-{m}" for m in MODALITIES[name])}
    assert ds.modalities == MODALITIES[name] and ds.resolution == RESOLUTION[name]
    assert (ds.context_frames, ds.future_frames, ds.rollout_frames) == FRAMES[name]
    assert ds.context_frames + ds.rollout_frames <= ds.source.video_frames
    # the paper's architecture (supp 1.1) and training (as paper_cityscapes)
    assert (p.autoencoder.patch_size, p.autoencoder.latent_channels, p.autoencoder.width) == AUTOENCODER[name]
    assert all(r % p.autoencoder.patch_size == 0 for r in ds.resolution)
    assert (p.unet.model_channels, p.unet.channel_mult, p.joint.cross_attention) == (256, (1, 2), "deep")
    assert (p.sampling.method, p.sampling.steps, p.sampling.eta) == ("ddim", 100, 1.0)
    assert (p.train_single.lr, p.train_joint.lr, p.train_joint.cond_prob) == (1e-4, 1e-5, 0.7)
    assert p.train_joint.patterns == "official" and p.train_joint.explicit is None
    assert p.diffusion.prediction == "eps" and not p.diffusion.residual
    cityscapes = paper("paper_cityscapes")
    for section in ("unet", "diffusion", "joint", "sampling", "train_single", "train_joint", "train_autoencoder"):
        assert getattr(p, section) == getattr(cityscapes, section), section
    assert (p.evaluate.split, p.evaluate.batch_size, p.evaluate.trajectories) == ("test", 16, 1)


def test_bair_uses_vitb_pseudo_depth_frame_by_frame():
    p = paper("paper_bair")
    ds = p.datasets["bair"]
    assert ds.source.kind == "image_sequence" and tuple(ds.source.modalities) == ("rgb",)
    assert ds.source.video_frames == 30
    assert ds.pseudo_depth.encoder == "vitb" and ds.pseudo_depth.normalization == "per_frame"
    assert p.weights.depth_anything_vitb is not None and p.autoencoder.gray_to_rgb
    assert p.pipeline.pseudo_depth == {"bair": str(ds.source.root)}


def test_era5_fields_area_and_metric():
    p = paper("paper_era5")
    ds = p.datasets["era5"]
    assert ds.source.kind == "era5" and ds.source.provides == ("t2m", "sp")
    assert ds.source.grid == ds.resolution  # the area is the resolution: no resize
    assert ds.source.processing.normalization == "train" and ds.pseudo_depth is None
    splits = ds.source.processing.splits
    assert set(splits.months) == set(ds.source.months) and len(splits.train) == 12
    assert p.evaluate.metrics == ("l1",) and not p.autoencoder.gray_to_rgb
    assert tuple(p.pipeline.download_era5) == ("era5",)


def test_agriculture_is_leave_one_out_over_plants_with_vitl_pseudo_depth(tmp_path):
    """supp 3.1: four dates per plant (one video each), 512x288, 3 -> 1, Depth-Anything-V2 (ViT-L
    assumed), leave-one-out: on a tree of plant folders the preset's held_out plant is the test
    split, its val plants the val split, every other plant trains, and pseudo-depth labels all."""
    from syncvp.data.sources import image_sequence, raw_videos

    p = paper("paper_agriculture")
    ds = p.datasets["agriculture"]
    src = ds.source
    assert src.kind == "image_sequence" and tuple(src.modalities) == ("rgb",) and src.splits == "leave_one_out"
    assert (src.video_frames, src.stride, len(src.held_out)) == (4, 1, 1) and src.val
    assert ds.pseudo_depth.encoder == "vitl" and p.weights.depth_anything_vitl is not None
    assert p.pipeline.pseudo_depth == {"agriculture": str(src.root)} and p.autoencoder.gray_to_rgb
    assert "fvd" not in p.evaluate.metrics and p.weights.i3d is None  # one predicted frame: no FVD
    plants = [*src.held_out, *src.val, "plant_100", "plant_101"]
    for k, plant in enumerate(plants):
        for d, date in enumerate(("2022-03-01", "2022-03-15", "2022-03-29", "2022-04-12")):
            path = tmp_path / "rgb" / plant / f"{date}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), np.full((18, 32, 3), 10 * k + d, np.uint8))
    source = dataclasses.replace(src, root=tmp_path)
    videos = image_sequence.videos("agriculture", source, tmp_path)
    split = {v.video_id.split("-")[0]: v.split for v in videos}
    assert split == {
        **{h: "test" for h in src.held_out},
        **{v: "val" for v in src.val},
        "plant_100": "train",
        "plant_101": "train",
    }
    assert all(len(v.files["rgb"]) == 4 for v in videos)
    listed = raw_videos("agriculture", dataclasses.replace(ds, source=source), tmp_path)
    assert sorted(v.video_id for v in listed) == sorted(f"{plant}-000000" for plant in plants)


def _label_png(path: Path, ids: np.ndarray) -> None:
    """A SYNTHIA label PNG: 16-bit, class id in the red channel, an instance id in the others."""
    bgr = np.stack([np.full_like(ids, 7), np.full_like(ids, 3), ids], -1).astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), bgr)


def test_synthia_class_maps_are_gray_ids_resized_nearest(tmp_path):
    """The preset's source on a tiny SYNTHIA tree: stripes of classes 0 and 15 two pixels wide come
    out as 0 and 255 only (nearest), other ids as id * 17, RGB resized by the preset's mode."""
    from syncvp.data.sources import synthia

    p = paper("paper_synthia")
    ds = p.datasets["synthia"]
    assert ds.source.kind == "synthia" and ds.source.provides == ("rgb", "semantic")
    assert ds.source.resize == "bilinear" and ds.pseudo_depth is None
    frames, size = ds.source.video_frames, 32
    # columns of classes 0, 0, 15, 15, ...; the lower half inverted: area or bilinear would blend them
    half = np.tile(np.where(np.arange(size) % 4 >= 2, 15, 0), (size // 2, 1))
    stripes = np.concatenate([half, 15 - half]).astype(np.uint16)
    for split, sequences in ds.source.splits.as_dict().items():
        for seq in sequences:
            for f in range(frames):
                stem = f"{f:06d}"
                ids = stripes if f % 2 == 0 else np.full((size, size), 8, np.uint16)
                _label_png(tmp_path / seq / "GT" / "LABELS" / ds.source.camera / f"{stem}.png", ids)
                rgb = tmp_path / seq / "RGB" / ds.source.camera / f"{stem}.png"
                rgb.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(rgb), np.full((size, size, 3), 40 + f, np.uint8))
    cfg = dataclasses.replace(ds, source=dataclasses.replace(ds.source, root=tmp_path), resolution=(8, 8))
    paths = dataclasses.replace(p.paths, interim=tmp_path / "interim")
    out = synthia.prepare_split("synthia", cfg, paths, "test", {})
    sem = out["semantic"].values
    assert sem.shape == (1, frames, 8, 8) and sem.dtype == np.uint8
    assert set(np.unique(sem[0, 0::2])) == {0, 255}  # nearest: no blend of classes 0 and 15
    assert set(np.unique(sem[0, 1::2])) == {8 * 17}
    assert out["rgb"].shape == (1, frames, 8, 8, 3)


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_command_prints_a_valid_params_file(preset, tmp_path):
    res = subprocess.run([sys.executable, "-m", "syncvp", "preset", preset], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (tmp_path / "params.yaml").write_text(res.stdout)
    check = subprocess.run(
        [sys.executable, "-m", "syncvp", "check-params", str(tmp_path / "params.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    printed = yaml.safe_load(res.stdout)
    assert printed["datasets"].keys() == {PRESETS[preset]}
    assert printed["pipeline"]["train"] == [PRESETS[preset]]


def _write_stores(paths, name: str, modalities, frames: int, size: tuple[int, int], videos: int = 2) -> None:
    """train/val/test stores of the preset's modalities: moving noise images (rgb 3 channels, depth
    and class maps 1), or fields in K / Pa with a NaN sea strip and a `valid` mask."""
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        arrays, attrs, valid = {}, {}, None
        for m in modalities:
            if m in FIELD_RANGE:
                lo, hi, units = FIELD_RANGE[m]
                valid = np.ones((videos, frames, *size), np.uint8)
                valid[..., :4] = 0
                x = (lo + (hi - lo) * rng.random((videos, frames, *size))).astype(np.float32)
                arrays[m] = np.where(valid > 0, x, np.nan).astype(np.float32)
                attrs[m] = {"units": units, "norm_min": lo, "norm_max": hi}
                continue
            base = rng.integers(0, 256, (videos, 1, *size, 3))
            moving = ((base + np.arange(frames)[None, :, None, None, None] * 9) % 256).astype(np.uint8)
            if m == "rgb":
                arrays[m] = moving
            elif m == "semantic":
                arrays[m] = (moving[..., 0] % 16 * 17).astype(np.uint8)
            else:
                arrays[m] = moving[..., 0].copy()
        ds = store.build_dataset(
            arrays,
            dataset=name,
            split=split,
            modality_attrs=attrs,
            valid=valid,
            video_ids=[f"{split}{i}" for i in range(videos)],
        )
        store.write_store(paths.store(name, split), ds)


def _tiny(preset: str, tmp_path: Path):
    """The preset with widths cut down and a 32 px dataset (same modalities, channels, frame counts)."""
    p, name = paper(preset), PRESETS[preset]
    ds = dataclasses.replace(p.datasets[name], resolution=TINY_SIZE.get(name, (TINY, TINY)))
    paths = dataclasses.replace(
        p.paths,
        raw=tmp_path / "raw",
        interim=tmp_path / "interim",
        processed=tmp_path / "processed",
        models=tmp_path / "models",
        eval=tmp_path / "eval",
    )
    ae = dataclasses.replace(
        p.autoencoder, width=16, depth=1, heads=2, head_dim=8, axis_heads=1, axis_head_dim=8, axis_mlp=16
    )
    small = dict(steps=1, batch_size=2, num_workers=0)
    return with_pipeline(
        p,
        paths=paths,
        datasets={name: ds},
        autoencoder=ae,
        unet=dataclasses.replace(p.unet, model_channels=8, num_heads=2, norm_groups=4),
        joint=dataclasses.replace(p.joint, num_heads=2),
        train_single=dataclasses.replace(p.train_single, **small),
        train_joint=dataclasses.replace(p.train_joint, **small),
        run=dataclasses.replace(p.run, device="cpu", threads=1),
    )


def tiny_evaluation(p, name: str, metrics: tuple[str, ...]):
    """The evaluation plan of one video, one trajectory, every modality observed, 2 DDIM steps,
    no reference columns and no pretrained weights."""
    config = dataclasses.replace(
        p.evaluate,
        videos=1,
        batch_size=1,
        trajectories=1,
        conditions=("all",),
        metrics=metrics,
        baselines=(),
        samples=1,
    )
    weights = dataclasses.replace(p.weights, **{f.name: None for f in dataclasses.fields(p.weights)})
    sampling = dataclasses.replace(p.sampling, steps=2)
    return plan_evaluation(name, p.datasets[name], config, sampling, weights, p.paths, device="cpu")


@pytest.mark.parametrize("preset", PRESETS)
def test_tiny_preset_trains_each_stage_one_step_and_evaluates_one_batch(preset, tmp_path):
    name = PRESETS[preset]
    p = _tiny(preset, tmp_path)
    ds = p.datasets[name]
    assert ds.modalities == MODALITIES[name] and (ds.context_frames, ds.future_frames) == FRAMES[name][:2]
    _write_stores(p.paths, name, ds.modalities, frames=ds.source.video_frames, size=ds.resolution)
    write_autoencoders(p, name, ds.modalities)
    for m in ds.modalities:
        job = diffusion_job.plan_single(
            f"{name}-{m}",
            dataset=ds,
            unet=p.unet,
            diffusion=p.diffusion,
            train=p.train_single,
            run=p.run,
            paths=p.paths,
        )
        metrics = diffusion_train.train(job)
        assert metrics["steps"] == 1
        diffusion_train.export(job)
    job = diffusion_job.plan_joint(
        name,
        dataset=ds,
        unet=p.unet,
        diffusion=p.diffusion,
        joint=p.joint,
        train=p.train_joint,
        run=p.run,
        paths=p.paths,
    )
    assert job.stage1 and job.patterns[frozenset()] == 0.0
    metrics = diffusion_train.train(job)
    assert metrics["steps"] == 1
    for m in ds.modalities:
        assert math.isfinite(metrics[f"loss_{m}_final"]) and metrics[f"loss_{m}_final"] > 0
    diffusion_train.export(job)

    fields = name == "era5"
    plan = tiny_evaluation(p, name, ("l1",) if fields else ("ssim", "psnr", "l2"))
    assert plan.config.rollout_frames == FRAMES[name][2]
    result = json.loads(evaluate(plan).read_text())[name]["all"]
    for mode in ("paper", "standard"):
        for m in ds.modalities:
            scores = result[mode][m]
            if fields:
                lo, hi, _ = FIELD_RANGE[m]
                assert 0 < scores["l1"] < hi - lo  # physical units, sea masked (NaN would fail)
            else:
                assert -1 <= scores["ssim"] <= 1 and math.isfinite(scores["psnr"]) and scores["l2"] >= 0
