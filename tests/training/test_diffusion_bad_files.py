"""Diffusion training meets bad files: a truncated or foreign autoencoder or stage-1 model fails
the plan with one line naming the file and the stage that rewrites it; a bad latent cache is
reported in one warning and encoded again, and training proceeds on the same latents."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from syncvp.models.diffusion_file import ModelFileError
from syncvp.training import diffusion_train
from syncvp.training.diffusion_latents import CACHE_FORMAT, cache_name, precompute
from tests.io.test_model_files import corrupt
from tests.training.diffusion_setup import setup, setup_with_context_encoder
from tests.training.test_diffusion_training import plan_joint, plan_single

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


@pytest.mark.parametrize("encoder, role", [("context", "context"), ("future", "future")])
def test_a_truncated_autoencoder_fails_plan_and_load_naming_file_and_stage(tiny_params, encoder, role):
    p = setup_with_context_encoder(tiny_params, encoder)
    job = plan_single(p)
    path = p.paths.model_dir(f"synthetic-rgb-{role}") / "autoencoder.pt"
    corrupt(path, "truncated")
    expected = (
        rf"^{path} is not a model file this project wrote \(truncated or foreign: .*\); "
        rf"rerun `dvc repro train_autoencoder@synthetic-rgb-{role}` or delete it$"
    )
    with pytest.raises(ModelFileError, match=expected):
        plan_single(p)
    with pytest.raises(ModelFileError, match=expected):
        diffusion_train.load_encoders(job, CPU)


def test_a_foreign_stage1_model_fails_the_joint_plan_naming_file_and_stage(tiny_params):
    p = setup(tiny_params)
    for m in ("rgb", "depth"):
        path = p.paths.model_dir(f"synthetic-{m}") / "diffusion.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"x": 1}, path)
    path = p.paths.model_dir("synthetic-rgb") / "diffusion.pt"
    with pytest.raises(
        ModelFileError,
        match=rf"^{path} is not a model file this project wrote \(truncated or "
        r"foreign: a dict of \['x'\], not a syncvp-diffusion file\); "
        r"rerun `dvc repro train_single@synthetic-rgb` or delete it$",
    ):
        plan_joint(p)


def _cache(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _spoil(path, how: str) -> None:
    if how == "mismatched":  # a well-formed cache one window short
        good = _cache(path)
        torch.save({"format": CACHE_FORMAT, "context": good["context"][:-1], "future": good["future"][:-1]}, path)
    else:
        corrupt(path, how)


@pytest.mark.parametrize("how", ["truncated", "empty", "foreign torch", "mismatched", "directory"])
def test_a_bad_latent_cache_is_encoded_again_and_training_proceeds(tiny_params, how):
    p = setup(tiny_params)
    job = plan_single(p)
    fresh = precompute(job, diffusion_train.load_encoders(job, CPU), CPU)["rgb"]
    reference = _cache(fresh)
    _spoil(fresh, how)
    warnings = []
    result = diffusion_train.train(job, warn=warnings.append)
    assert result["steps"] == job.train.steps
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith(f"{fresh} is not a latent cache")
    assert warnings[0].endswith(f": encoding the training windows again into {fresh}")
    rebuilt = _cache(fresh)
    assert torch.equal(rebuilt["context"], reference["context"]) and torch.equal(rebuilt["future"], reference["future"])


def test_a_bad_stage1_latent_cache_is_skipped_and_left_alone(tiny_params, tmp_path):
    p = setup(tiny_params)
    job = plan_joint(dataclasses.replace(p, train_joint=dataclasses.replace(p.train_joint, init="scratch")))
    encoders = diffusion_train.load_encoders(job, CPU)
    fresh = precompute(job, encoders, CPU)
    reference = {m: _cache(f) for m, f in fresh.items()}
    stage1_work = tmp_path / "stage1-work"  # the caches as the stage-1 units left them, one cut short
    stage1_work.mkdir()
    for f in fresh.values():
        shutil.move(f, stage1_work / f.name)
    bad = stage1_work / cache_name(job, "rgb")
    corrupt(bad, "truncated")
    spoiled = bad.read_bytes()
    warnings = []
    paths = precompute(dataclasses.replace(job, latent_sources=(stage1_work,)), encoders, CPU, warn=warnings.append)
    assert paths == {"rgb": job.work_dir / bad.name, "depth": stage1_work / cache_name(job, "depth")}
    assert len(warnings) == 1 and warnings[0].startswith(f"{bad} is not a latent cache this project wrote")
    assert bad.read_bytes() == spoiled, "another unit's work directory is read, never written"
    for m, path in paths.items():
        assert torch.equal(_cache(path)["future"], reference[m]["future"])


def test_a_killed_cache_write_leaves_nothing_behind(tiny_params):
    """A cache write killed before its rename leaves `.latents-<m>-<key>.pt.tmp-*` in the work
    folder; the next precompute deletes it and writes the cache."""
    p = setup(tiny_params)
    job = plan_single(p)
    leftover = job.work_dir / f".{cache_name(job, 'rgb')}.tmp-k1ll3d"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"PK\x03\x04" + bytes(1000))
    paths = precompute(job, diffusion_train.load_encoders(job, CPU), CPU)
    assert paths["rgb"].is_file() and not leftover.exists()
    assert [f.name for f in job.work_dir.iterdir() if f.name.startswith(".")] == []
