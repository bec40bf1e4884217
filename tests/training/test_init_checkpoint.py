"""`init: checkpoint` (a fine-tune): every training stage starts from the same unit of another run's
models folder, checked before any work, and trains on from exactly those weights."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch

from syncvp.config import ParamsError, params_from_dict, to_plain
from syncvp.config.init_from import InitFrom
from syncvp.config.loader import read_yaml
from syncvp.diffusion.target import DiffusionTarget
from syncvp.models.autoencoder import TriplaneAutoencoder, load_autoencoder, save_autoencoder
from syncvp.models.diffusion_file import load_diffusion_model
from syncvp.training import autoencoder_train, diffusion_train
from syncvp.training.seeded_init import build_seeded
from tests.conftest import REPO
from tests.training.diffusion_setup import setup
from tests.training.stores import write_tiny_stores
from tests.training.test_autoencoder_training import tiny_job
from tests.training.test_diffusion_training import plan_joint, plan_single, train_stage1

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def with_init(train, models, dataset="source"):
    return dataclasses.replace(train, init="checkpoint", init_from=InitFrom(models=models, dataset=dataset))


# ------------------------------------------------------------------------------------------------
# Params


def test_init_from_is_given_exactly_with_init_checkpoint():
    data = read_yaml(REPO / "params.yaml")
    for section in ("train_autoencoder", "train_single", "train_joint"):
        bad = {**data, section: {**data[section], "init": "checkpoint", "init_from": None}}
        with pytest.raises(ParamsError, match=rf"{section}.init_from: init is checkpoint: give"):
            params_from_dict(bad, "params.yaml")
        stray = {**data, section: {**data[section], "init_from": {"models": "old/models", "dataset": "synthetic"}}}
        with pytest.raises(ParamsError, match=rf"{section}.init_from: must be null unless init is checkpoint"):
            params_from_dict(stray, "params.yaml")
        good = {**data, section: {**data[section], "init": "checkpoint", "init_from": stray[section]["init_from"]}}
        assert params_from_dict(good).section(section).init_from == InitFrom(
            models=Path("old/models"), dataset="synthetic"
        )
    bad = {**data, "train_single": {**good["train_single"], "init_from": {"models": "m", "dataset": "a-b"}}}
    with pytest.raises(ParamsError, match=r"train_single.init_from.dataset: must be a dataset name"):
        params_from_dict(bad)


# ------------------------------------------------------------------------------------------------
# Autoencoders


def test_autoencoder_starts_from_the_source_file_and_refuses_another_architecture(tiny_params, tmp_path):
    write_tiny_stores(tiny_params.paths)
    scratch = tiny_job(tiny_params)
    source = tmp_path / "source_models"
    model = build_seeded(lambda: TriplaneAutoencoder(scratch.spec), 123)
    path = save_autoencoder(source / "source-rgb-context" / "autoencoder.pt", model)
    job = tiny_job(tiny_params, init="checkpoint", init_from=InitFrom(models=source, dataset="source"))
    assert job.init_file == path and scratch.init_file is None
    assert job.fingerprint("reconstruct") != scratch.fingerprint("reconstruct")
    built = autoencoder_train.build_model(job, CPU)
    assert same_weights(built.state_dict(), model.state_dict())
    assert not same_weights(autoencoder_train.build_model(scratch, CPU).state_dict(), model.state_dict())
    # the fine-tune trains on from there and records what it started from
    autoencoder_train.train(job)
    autoencoder_train.export(job, job.files.root)
    meta = torch.load(job.files.model, weights_only=True)["meta"]
    assert meta["init_file"][0] == str(path) and len(meta["init_file"][1]) == 32
    assert not same_weights(load_autoencoder(job.files.model).state_dict(), model.state_dict())
    # errors before any work: another architecture (the differing key named), a missing file
    wider = dataclasses.replace(scratch.spec, config=dataclasses.replace(scratch.spec.config, latent_channels=6))
    save_autoencoder(path, build_seeded(lambda: TriplaneAutoencoder(wider), 1))
    with pytest.raises(
        ValueError, match=r"source-rgb-context/autoencoder.pt cannot start.*latent_channels 6 \(now 4\)"
    ):
        tiny_job(tiny_params, init="checkpoint", init_from=InitFrom(models=source, dataset="source"))
    with pytest.raises(FileNotFoundError, match=r"other-rgb-context/autoencoder.pt does not exist: train_autoencoder"):
        tiny_job(tiny_params, init="checkpoint", init_from=InitFrom(models=source, dataset="other"))


# ------------------------------------------------------------------------------------------------
# Diffusion models


def train_source(tiny_params, tmp_path):
    """A tiny run's stage-1 and joint models, copied to `<tmp>/source_models` as dataset "source"."""
    p = setup(tiny_params)
    train_stage1(p)
    job = plan_joint(p)
    diffusion_train.train(job)
    diffusion_train.export(job)
    source = tmp_path / "source_models"
    for unit in ("synthetic-rgb", "synthetic-depth", "synthetic"):
        kept = "joint.pt" if unit == "synthetic" else "diffusion.pt"
        (source / unit.replace("synthetic", "source")).mkdir(parents=True)
        shutil.copy(p.paths.model_dir(unit) / kept, source / unit.replace("synthetic", "source") / kept)
    return p, source


def test_diffusion_fine_tunes_start_from_the_source_models(tiny_params, tmp_path):
    """Stage 1 starts from the source stage-1 model and keeps its diffusion space; the joint model
    loads the whole source joint model, not the stage-1 ones."""
    p, source = train_source(tiny_params, tmp_path)
    q = dataclasses.replace(p, train_single=with_init(p.train_single, source))
    job, scratch = plan_single(q), plan_single(p)
    assert job.init_file == source / "source-rgb" / "diffusion.pt" and job.fingerprint != scratch.fingerprint
    saved = load_diffusion_model(job.init_file, kind="single")
    assert same_weights(diffusion_train.build_model(job, CPU).state_dict(), saved.state_dict)
    encoders = diffusion_train.load_encoders(job, CPU)
    target = diffusion_train.diffusion_target(job, encoders, CPU)
    assert target.as_dict() == DiffusionTarget.from_dict(saved.meta["target"]).as_dict()
    other = dict(to_plain(p.unet), model_channels=16)
    wide = dataclasses.replace(q, unet=dataclasses.replace(q.unet, model_channels=other["model_channels"]))
    with pytest.raises(ValueError, match=r"source-rgb/diffusion.pt cannot start.*unet.model_channels 8 \(now 16\)"):
        plan_single(wide)
    moved = dataclasses.replace(q, train_single=with_init(p.train_single, source, dataset="elsewhere"))
    with pytest.raises(FileNotFoundError, match=r"elsewhere-rgb/diffusion.pt does not exist: train_single.init"):
        plan_single(moved)

    q = dataclasses.replace(p, train_joint=with_init(p.train_joint, source))
    job = plan_joint(q)
    assert job.init_file == source / "source" / "joint.pt" and job.stage1 == {}
    saved = load_diffusion_model(job.init_file, kind="joint")
    assert same_weights(diffusion_train.build_model(job, CPU).state_dict(), saved.state_dict)
    assert job.fingerprint != plan_joint(p).fingerprint
    heads = dataclasses.replace(q, joint=dataclasses.replace(q.joint, num_heads=4))
    with pytest.raises(ValueError, match=r"source/joint.pt cannot start.*joint.num_heads 2 \(now 4\)"):
        plan_joint(heads)
    # what only shapes training may differ; what the network computes may not
    trained_differently = dataclasses.replace(q, diffusion=dataclasses.replace(q.diffusion, high_noise_share=0.0))
    assert plan_joint(trained_differently).init_file == job.init_file
    other_target = dataclasses.replace(q, diffusion=dataclasses.replace(q.diffusion, prediction="eps"))
    with pytest.raises(ValueError, match=r"diffusion.prediction 'v' \(now 'eps'\)"):
        plan_joint(other_target)
    # the fine-tune trains and records the file it started from
    diffusion_train.train(job)
    diffusion_train.export(job)
    meta = load_diffusion_model(job.model_file, kind="joint").meta
    assert meta["init"] == "checkpoint" and meta["init_file"][0] == str(job.init_file)
