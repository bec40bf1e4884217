"""The paper's OpenDV-YouTube experiment as two presets (supp 1.5): `paper_cityscapes256` (Cityscapes
re-trained at 256x256, 8 -> 8, P = 8, C' = 16) and `paper_opendv`, whose every training stage starts
from the matching Cityscapes unit (`init: checkpoint`); and the `extends` rule of presets."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from pathlib import Path

import pytest

from syncvp import presets
from syncvp.config import ParamsError, params_from_dict
from syncvp.config.init_from import InitFrom
from syncvp.config.loader import read_yaml
from syncvp.evaluation import evaluate
from syncvp.models.autoencoder import AutoencoderSpec
from syncvp.models.diffusion_file import load_diffusion_model
from syncvp.training import autoencoder_job, autoencoder_train, diffusion_job, diffusion_train
from syncvp.training.init_checkpoint import network_space
from tests.conftest import REPO, with_pipeline
from tests.training.test_paper_experiment_presets import _write_stores, tiny_evaluation

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@functools.cache
def preset(name: str):
    return params_from_dict(presets.apply(read_yaml(REPO / "params.yaml"), presets.load(name)), name)


def test_cityscapes256_is_paper_cityscapes_at_256_with_its_own_patch_and_latent_channels():
    p, base = preset("paper_cityscapes256"), preset("paper_cityscapes")
    ds = p.datasets["cityscapes"]
    assert ds.resolution == (256, 256) and (ds.context_frames, ds.future_frames) == (8, 8)
    assert ds.context_frames + ds.rollout_frames <= ds.source.video_frames
    ae = p.autoencoder_for("cityscapes")
    assert (ae.patch_size, ae.latent_channels) == (8, 4 * 4) and ae.width == base.autoencoder.width == 192
    assert p.unet_for("cityscapes") == base.unet and p.joint == base.joint and p.train_joint == base.train_joint
    assert p.paths.models == Path("models-cityscapes256") and p.pipeline.train == ("cityscapes",)


def test_opendv_fine_tunes_every_stage_from_the_cityscapes256_units_of_the_same_architecture():
    p, src = preset("paper_opendv"), preset("paper_cityscapes256")
    ds, cs = p.datasets["opendv"], src.datasets["cityscapes"]
    assert set(p.datasets) == {"opendv"} and p.pipeline.train == ("opendv",)
    assert (ds.resolution, ds.context_frames, ds.future_frames, ds.rollout_frames) == ((256, 256), 8, 8, 24)
    assert ds.pseudo_depth.encoder == "vitl" and p.weights.depth_anything_vitl is not None
    expected = InitFrom(models=src.paths.models, dataset="cityscapes")
    for section in (p.train_autoencoder, p.train_single, p.train_joint):
        assert section.init == "checkpoint" and section.init_from == expected
    assert p.paths.models != src.paths.models  # the fine-tune never overwrites what it starts from
    # what `init: checkpoint` checks when the stages plan: the same autoencoder specs, unet, joint and diffusion
    for m in ds.modalities:
        for frames in (ds.context_frames, ds.future_frames):

            def spec(params, name, channels=3 if m == "rgb" else 1, frames=frames):
                return AutoencoderSpec.from_config(
                    params.autoencoder_for(name), channels=channels, frames=frames, resolution=(256, 256)
                )

            assert spec(p, "opendv") == spec(src, "cityscapes")
    assert p.unet_for("opendv") == src.unet_for("cityscapes") and p.joint == src.joint
    assert network_space(p.diffusion) == network_space(src.diffusion)
    assert (ds.context_frames, ds.future_frames) == (cs.context_frames, cs.future_frames)


def test_extends_merges_like_apply_and_refuses_a_cycle(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("unet: {model_channels: 8, num_heads: 2}\ndatasets: {x: 1}\n")
    (tmp_path / "b.yaml").write_text("extends: a\nunet: {num_heads: 4}\ndatasets: {y: 2}\n")
    (tmp_path / "c.yaml").write_text("extends: d\n")
    (tmp_path / "d.yaml").write_text("extends: c\n")
    monkeypatch.setattr(presets, "HERE", tmp_path)
    assert presets.load("b") == {"unet": {"model_channels": 8, "num_heads": 4}, "datasets": {"y": 2}}
    with pytest.raises(ParamsError, match=r"c.yaml: extends 'd', which extends it again"):
        presets.load("d")
    with pytest.raises(ParamsError, match=r"unknown preset 'e'"):
        (tmp_path / "f.yaml").write_text("extends: e\n")
        presets.load("f")


# ------------------------------------------------------------------------------------------------
# The two-step run, tiny: Cityscapes-256 models, then every OpenDV stage fine-tuned from them


def _tiny(preset_name: str, name: str, root: Path, models: Path):
    """The preset with widths cut down, 32 px frames and every path under `root` (models: `models`)."""
    p = preset(preset_name)
    paths = dataclasses.replace(
        p.paths,
        raw=root / "raw",
        interim=root / "interim",
        processed=root / "processed",
        models=models,
        eval=root / "eval",
    )
    ds = dataclasses.replace(p.datasets[name], resolution=(32, 32))
    small = dict(steps=1, batch_size=2, num_workers=0)
    init = {}
    if p.train_joint.init == "checkpoint":  # the fine-tune: start from the tiny source run's folder
        init = dict(init_from=dataclasses.replace(p.train_joint.init_from, models=root / "models-cityscapes256"))
    return with_pipeline(
        p,
        paths=paths,
        datasets={name: ds},
        autoencoder=dataclasses.replace(
            p.autoencoder, width=16, depth=1, heads=2, head_dim=8, axis_heads=1, axis_head_dim=8, axis_mlp=16
        ),
        unet=dataclasses.replace(p.unet, model_channels=8, num_heads=2, norm_groups=4),
        joint=dataclasses.replace(p.joint, num_heads=2),
        train_autoencoder=dataclasses.replace(
            p.train_autoencoder,
            steps=1,
            batch_size=1,
            grad_accum=1,
            eval_every=0,
            eval_clips=1,
            num_workers=0,
            gan=dataclasses.replace(p.train_autoencoder.gan, enabled=False),
            **init,
        ),
        train_single=dataclasses.replace(p.train_single, **small, **init),
        train_joint=dataclasses.replace(p.train_joint, **small, **init),
        run=dataclasses.replace(p.run, device="cpu", threads=1),
    )


def _train(p, name: str) -> dict:
    """One step of every stage of dataset `name` (autoencoders, stage 1, joint); {unit: job}."""
    ds, jobs = p.datasets[name], {}
    for m in ds.modalities:
        for role in ("context", "future"):
            unit = f"{name}-{m}-{role}"
            jobs[unit] = autoencoder_job.plan(
                unit,
                dataset=ds,
                autoencoder=p.autoencoder_for(name),
                train=p.train_autoencoder,
                run=p.run,
                paths=p.paths,
                lpips_vgg16=None,
            )
            autoencoder_train.train(jobs[unit])
            autoencoder_train.export(jobs[unit], p.paths.model_dir(unit))
    sections = dict(dataset=ds, unet=p.unet_for(name), diffusion=p.diffusion, run=p.run, paths=p.paths)
    for m in ds.modalities:
        jobs[f"{name}-{m}"] = diffusion_job.plan_single(f"{name}-{m}", train=p.train_single, **sections)
    for unit in (*[f"{name}-{m}" for m in ds.modalities], name):
        if unit == name:  # the joint plan checks the stage-1 files: plan it after they exist
            jobs[name] = diffusion_job.plan_joint(name, joint=p.joint, train=p.train_joint, **sections)
        assert diffusion_train.train(jobs[unit])["steps"] == 1
        diffusion_train.export(jobs[unit])
    return jobs


def test_tiny_opendv_fine_tunes_every_stage_from_a_tiny_cityscapes256_run_and_evaluates(tmp_path):
    src = _tiny("paper_cityscapes256", "cityscapes", tmp_path, tmp_path / "models-cityscapes256")
    assert src.autoencoder_for("cityscapes").patch_size == 8  # the dataset's own sizes survive the shrink
    _write_stores(src.paths, "cityscapes", ("rgb", "depth"), frames=30, size=(32, 32))
    source_jobs = _train(src, "cityscapes")
    assert all(getattr(j, "init_file", None) is None for j in source_jobs.values())

    p = _tiny("paper_opendv", "opendv", tmp_path, tmp_path / "models")
    _write_stores(p.paths, "opendv", ("rgb", "depth"), frames=32, size=(32, 32))
    jobs = _train(p, "opendv")
    for unit, job in jobs.items():  # each unit starts from the same unit of the Cityscapes run
        source = source_jobs[unit.replace("opendv", "cityscapes")]
        assert job.init_file == (source.files.model if unit.count("-") == 2 else source.model_file), unit
    assert jobs["opendv"].stage1 == {}
    meta = load_diffusion_model(jobs["opendv"].model_file, kind="joint").meta
    assert meta["init"] == "checkpoint" and meta["init_file"][0] == str(source_jobs["cityscapes"].model_file)

    ds = p.datasets["opendv"]
    plan = tiny_evaluation(p, "opendv", ("ssim", "psnr", "l2"))
    assert plan.config.rollout_frames == 24  # 8 -> 24: three chunks
    scores = json.loads(evaluate(plan).read_text())["opendv"]["all"]["standard"]
    assert all(-1 <= scores[m]["ssim"] <= 1 and math.isfinite(scores[m]["psnr"]) for m in ds.modalities)
