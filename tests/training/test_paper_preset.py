"""The paper preset: loads strictly, has the paper's parameter counts, and a tests-sized variant of
it (same architecture family, shrunk) runs one training step of stage 1 and stage 2 on CPU."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from syncvp import presets
from syncvp.config import params_from_dict
from syncvp.config.loader import read_yaml
from syncvp.models.factory import build_joint_unet, build_unet
from syncvp.models.triplane import TriplaneShape
from syncvp.models.unet import count_parameters
from syncvp.training import diffusion_job, diffusion_train
from tests.conftest import with_pipeline
from tests.training.diffusion_setup import write_autoencoders
from tests.training.stores import write_tiny_stores

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def paper():
    return params_from_dict(presets.apply(read_yaml(REPO / "params.yaml"), presets.load("paper_cityscapes")))


def test_preset_loads_strictly_with_the_paper_values(paper):
    assert paper.pipeline.train == ("cityscapes",)
    assert paper.pipeline.joint == {"cityscapes": ("cityscapes-rgb", "cityscapes-depth")}
    assert paper.unet.model_channels == 256 and paper.sampling.steps == 100
    assert (paper.train_single.lr, paper.train_joint.lr, paper.train_single.cond_prob) == (1e-4, 1e-5, 0.7)
    assert (paper.train_joint.ema.decay, paper.train_joint.ema.every) == (0.9999, 25)


def test_preset_command_prints_a_valid_params_file(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "syncvp", "preset", "paper_cityscapes"], cwd=REPO, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr
    (tmp_path / "params.yaml").write_text(res.stdout)
    check = subprocess.run(
        [sys.executable, "-m", "syncvp", "check-params", str(tmp_path / "params.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert yaml.safe_load(res.stdout)["datasets"].keys() == {"cityscapes"}


def test_paper_parameter_counts(paper):
    """Built on the meta device (no memory): UNet ~58.56 M, joint ~123.43 M (docs/method.md §8)."""
    ds = paper.datasets["cityscapes"]
    shape = {
        role: TriplaneShape.for_video(
            channels=paper.autoencoder.latent_channels,
            height=ds.resolution[0],
            width=ds.resolution[1],
            frames=f,
            patch=paper.autoencoder.patch_size,
        )
        for role, f in (("context", ds.context_frames), ("future", ds.future_frames))
    }
    with torch.device("meta"):
        unet = count_parameters(build_unet(paper.unet, shape["future"], shape["context"]))
        joint = count_parameters(
            build_joint_unet(paper.unet, paper.joint, {m: (shape["future"], shape["context"]) for m in ds.modalities})
        )
    assert unet == pytest.approx(58.56e6, rel=0.005), unet
    assert joint == pytest.approx(123.43e6, rel=0.01), joint


def test_shrunk_preset_trains_one_step_of_each_stage(paper, tiny_params):
    """The preset's sections with widths cut down (channel_mult, attention at every level, deep
    STCA, official patterns, EMA every 25 kept) on the tiny synthetic data."""
    threads = torch.get_num_threads()
    unet = dataclasses.replace(paper.unet, model_channels=8, num_heads=2, norm_groups=4)
    joint = dataclasses.replace(paper.joint, num_heads=2)
    ae = dataclasses.replace(
        paper.autoencoder,
        width=16,
        depth=1,
        heads=2,
        head_dim=8,
        axis_heads=1,
        axis_head_dim=8,
        axis_mlp=16,
        gray_to_rgb=False,
    )
    small = dict(steps=1, batch_size=2, num_workers=0)
    p = with_pipeline(
        tiny_params,
        autoencoder=ae,
        unet=unet,
        joint=joint,
        diffusion=paper.diffusion,
        train_single=dataclasses.replace(paper.train_single, **small),
        train_joint=dataclasses.replace(paper.train_joint, **small),
        run=dataclasses.replace(paper.run, device="cpu", threads=1),
    )
    assert p.diffusion.context_encoder == "context" and p.pipeline.context_role == "context"
    write_tiny_stores(p.paths)
    write_autoencoders(p)
    ds = p.datasets["synthetic"]
    for m in ds.modalities:
        job = diffusion_job.plan_single(
            f"synthetic-{m}",
            dataset=ds,
            unet=p.unet,
            diffusion=p.diffusion,
            train=p.train_single,
            run=p.run,
            paths=p.paths,
        )
        assert diffusion_train.train(job)["steps"] == 1
        diffusion_train.export(job)
    job = diffusion_job.plan_joint(
        "synthetic",
        dataset=ds,
        unet=p.unet,
        diffusion=p.diffusion,
        joint=p.joint,
        train=p.train_joint,
        run=p.run,
        paths=p.paths,
    )
    assert job.patterns[frozenset()] == 0.0 and job.stage1
    metrics = diffusion_train.train(job)
    assert metrics["steps"] == 1 and metrics["loss_rgb_final"] > 0
    torch.set_num_threads(threads)  # run.threads 1 set it for the training


def test_preset_diffusion_section_is_the_paper_constant(paper):
    from syncvp.config.diffusion import PAPER_DIFFUSION

    section = dataclasses.asdict(paper.diffusion)
    assert section == {**PAPER_DIFFUSION, "high_noise_from": section["high_noise_from"]}
