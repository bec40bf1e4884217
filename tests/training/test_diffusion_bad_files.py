"""Diffusion training meets bad files: a truncated or foreign autoencoder or stage-1 model fails
the plan with one line naming the file and the stage that rewrites it."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from syncvp.models.export import ModelFileError
from syncvp.training import diffusion_train
from tests.conftest import with_pipeline
from tests.io.test_model_files import corrupt
from tests.training.diffusion_setup import setup, tiny_diffusion_params, write_autoencoders
from tests.training.stores import write_tiny_stores
from tests.training.test_diffusion_training import plan_joint, plan_single

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CPU = torch.device("cpu")


@pytest.mark.parametrize("encoder, role", [("context", "context"), ("future", "future")])
def test_a_truncated_autoencoder_fails_plan_and_load_naming_file_and_stage(tiny_params, encoder, role):
    p = tiny_diffusion_params(tiny_params)
    p = with_pipeline(p, diffusion=dataclasses.replace(p.diffusion, context_encoder=encoder, residual=False))
    write_tiny_stores(p.paths)
    write_autoencoders(p)
    job = plan_single(p)
    path = p.paths.model_dir(f"synthetic-rgb-{role}") / "autoencoder.pt"
    corrupt(path, "truncated")
    expected = (rf"^{path} is not a model file this project wrote \(truncated or foreign: .*\); "
                rf"rerun `dvc repro train_autoencoder@synthetic-rgb-{role}` or delete it$")
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
    with pytest.raises(ModelFileError, match=rf"^{path} is not a model file this project wrote \(truncated or "
                                             r"foreign: a dict of \['x'\], not a syncvp-diffusion file\); "
                                             r"rerun `dvc repro train_single@synthetic-rgb` or delete it$"):
        plan_joint(p)
