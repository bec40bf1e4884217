"""A project torch file that is empty, cut short, foreign, not a torch file at all, or a directory
fails with one line that names the file and what to do: autoencoders, diffusion models (stage 1
and joint), training checkpoints and latent caches, each written by the project's own save
function first."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch

from syncvp.io.checkpoint import CheckpointError, load_checkpoint, make_checkpoint, save_checkpoint
from syncvp.models.autoencoder import load_autoencoder, save_autoencoder
from syncvp.models.diffusion_file import ModelFileError, load_diffusion_model, save_diffusion_model
from syncvp.training.diffusion_latents import CACHE_FORMAT, LatentDataset
from tests.prediction.conftest import DIFFUSION, JOINT, UNET, autoencoders, joint_model, shapes, single_model

CORRUPTIONS = ("empty", "truncated", "foreign torch", "random bytes", "text", "directory")


def corrupt(path: Path, how: str) -> None:
    """Replace a good file the way a killed copy, a wrong file or a slip of the hand would."""
    good = path.read_bytes()
    path.unlink()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif how == "foreign torch":
        torch.save({"x": 1}, path)
    elif how == "random bytes":
        # seeded, and starting with neither a zip (PK) nor a pickle (0x80) signature, so the
        # reason is always the same (os.urandom sometimes began with a byte torch reads as pickle)
        path.write_bytes(b"SYNC" + random.Random(0).randbytes(4092))
    elif how == "text":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\n")
    else:
        path.mkdir()


def _autoencoder(models: Path) -> Path:
    _, fut = autoencoders()
    return save_autoencoder(models / "synthetic-rgb-future" / "autoencoder.pt", fut["rgb"])


def _stage1(models: Path) -> Path:
    ctx, fut = autoencoders()
    return save_diffusion_model(
        models / "synthetic-rgb" / "diffusion.pt",
        single_model(ctx, fut, "rgb"),
        shapes={"rgb": (fut["rgb"].latent_shape, ctx["rgb"].latent_shape)},
        unet=UNET,
        diffusion=DIFFUSION,
    )


def _joint(models: Path) -> Path:
    ctx, fut = autoencoders()
    return save_diffusion_model(
        models / "synthetic" / "joint.pt",
        joint_model(ctx, fut),
        shapes=shapes(ctx, fut),
        unet=UNET,
        diffusion=DIFFUSION,
        joint=JOINT,
    )


MODEL_FILES = {  # what writes the file, what reads it, the stage that rewrites it
    "autoencoder": (_autoencoder, load_autoencoder, "train_autoencoder@synthetic-rgb-future"),
    "stage-1": (_stage1, load_diffusion_model, "train_single@synthetic-rgb"),
    "joint": (_joint, load_diffusion_model, "train_joint@synthetic"),
}


@pytest.mark.parametrize("how", CORRUPTIONS)
@pytest.mark.parametrize("kind", list(MODEL_FILES))
def test_a_bad_model_file_names_itself_and_the_stage_that_rewrites_it(tmp_path, kind, how):
    write, load, stage = MODEL_FILES[kind]
    path = write(tmp_path / "models")
    load(path)  # the good file loads
    corrupt(path, how)
    with pytest.raises(ModelFileError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a model file this project wrote (")
    assert message.endswith(f"); rerun `dvc repro {stage}` or delete it")
    assert "\n" not in message
    if how != "directory":
        assert "(truncated or foreign: " in message


REASONS = {
    "empty": "(truncated or foreign: the file is empty)",
    "truncated": "(truncated or foreign: a damaged PyTorch archive of ",
    "foreign torch": "(truncated or foreign: a dict of ['x'], not a syncvp-autoencoder file)",
    "random bytes": "(truncated or foreign: not a PyTorch archive, it starts with b'",
    "text": "(truncated or foreign: not a PyTorch archive, it starts with b'version https://'",
    "directory": "(it is a directory)",
}


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_the_reason_says_what_the_file_is(tmp_path, how):
    path = _autoencoder(tmp_path / "models")
    corrupt(path, how)
    with pytest.raises(ModelFileError) as err:
        load_autoencoder(path)
    assert REASONS[how] in str(err.value)


def test_a_model_file_of_another_kind_or_an_unknown_name(tmp_path):
    stage1 = _stage1(tmp_path / "models")
    with pytest.raises(ModelFileError, match="a syncvp-diffusion file, not a syncvp-autoencoder file"):
        load_autoencoder(stage1)
    mine = shutil.copy(_autoencoder(tmp_path / "models"), tmp_path / "mine.pt")
    corrupt(Path(mine), "empty")
    with pytest.raises(ModelFileError, match="; retrain it, or point to a file this project wrote$"):
        load_autoencoder(mine)


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_a_bad_checkpoint_names_itself_in_one_line(tmp_path, how):
    path = save_checkpoint(
        tmp_path / "work" / "train.pt", make_checkpoint(config_hash="h", step=1, models={"m": torch.nn.Linear(2, 2)})
    )
    corrupt(path, how)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, remedy="rerun `dvc repro train_single@synthetic-rgb` to train it from scratch")
    message = str(err.value)
    assert message.startswith(f"{path} is not a training checkpoint this project wrote (") and "\n" not in message
    assert message.endswith("; rerun `dvc repro train_single@synthetic-rgb` to train it from scratch")


@pytest.mark.parametrize("how", CORRUPTIONS)
def test_a_bad_latent_cache_names_itself(tmp_path, how):
    path = tmp_path / "latents-rgb-0123456789abcdef.pt"
    torch.save({"format": CACHE_FORMAT, "context": torch.zeros(3, 2, 4), "future": torch.zeros(3, 2, 6)}, path)
    assert len(LatentDataset({"rgb": path})) == 3
    corrupt(path, how)
    with pytest.raises(ModelFileError) as err:
        LatentDataset({"rgb": path})
    assert str(err.value).startswith(f"{path} is not a latent cache this project wrote (")
    assert "\n" not in str(err.value)
