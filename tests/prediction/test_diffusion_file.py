"""Diffusion-model files: round trip of stage-1 and joint models, stage-1 -> stage-2 strict
load through files, kind checks, and `load_predictor` wiring with autoencoder checks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from syncvp.config import RolePair
from syncvp.models.autoencoder import save_autoencoder
from syncvp.models.diffusion_file import (
    ModelFileError,
    load_diffusion_model,
    save_diffusion_model,
    stage1_branch_states,
)
from syncvp.models.factory import build_joint_unet
from syncvp.prediction import load_predictor
from tests.models.tiny import perturb
from tests.prediction.conftest import (
    DIFFUSION,
    JOINT,
    SAMPLING,
    UNET,
    autoencoders,
    context_clips,
    joint_model,
    shapes,
    single_model,
)


def latent_inputs(model_shapes, batch=2):
    g = torch.Generator().manual_seed(5)
    x = {m: torch.randn(batch, f.channels, f.length, generator=g) for m, (f, c) in model_shapes.items()}
    c = {m: torch.randn(batch, c.channels, c.length, generator=g) for m, (f, c) in model_shapes.items()}
    return x, torch.tensor([3, 70]), c


def test_joint_model_round_trip(tmp_path):
    ctx, fut = autoencoders()
    model = perturb(joint_model(ctx, fut), seed=1)
    s = shapes(ctx, fut)
    path = save_diffusion_model(
        tmp_path / "joint.pt", model, shapes=s, unet=UNET, diffusion=DIFFUSION, joint=JOINT, meta={"step": 7}
    )
    f = load_diffusion_model(path, kind="joint")
    assert f.unet == UNET and f.joint == JOINT and f.diffusion == DIFFUSION and f.meta == {"step": 7}
    assert f.shapes == s and f.modalities == ("rgb", "depth")
    rebuilt = f.build()
    x, t, c = latent_inputs(s)
    a, b = model(x, t, c), rebuilt(x, t, c)
    for m in a:
        assert torch.equal(a[m], b[m])
    assert not any(p.requires_grad for p in rebuilt.parameters())


def test_cross_inputs_round_trip_and_older_files_have_none(tmp_path):
    ctx, fut = autoencoders()
    cfg = dataclasses.replace(JOINT, cross_inputs=True)
    s = shapes(ctx, fut)
    torch.manual_seed(0)
    model = perturb(build_joint_unet(UNET, cfg, s), seed=2).eval().requires_grad_(False)
    path = save_diffusion_model(tmp_path / "joint.pt", model, shapes=s, unet=UNET, diffusion=DIFFUSION, joint=cfg)
    rebuilt = load_diffusion_model(path, kind="joint").build()
    x, t, c = latent_inputs(s)
    assert all(torch.equal(model(x, t, c)[m], rebuilt(x, t, c)[m]) for m in s)
    old = save_diffusion_model(
        tmp_path / "old.pt", joint_model(ctx, fut), shapes=s, unet=UNET, diffusion=DIFFUSION, joint=JOINT
    )
    payload = torch.load(old, weights_only=True)
    del payload["joint"]["cross_inputs"]  # a file written before the key existed
    torch.save(payload, old)
    f = load_diffusion_model(old, kind="joint")
    assert f.joint.cross_inputs is False and f.build().cross_inputs is None


def test_stage1_files_load_strictly_into_the_joint_branches(tmp_path):
    ctx, fut = autoencoders()
    files = {}
    for m in ("rgb", "depth"):
        unet = perturb(single_model(ctx, fut, m), seed=hash(m) % 100)
        save_diffusion_model(
            tmp_path / f"{m}.pt",
            unet,
            shapes={m: (fut[m].latent_shape, ctx[m].latent_shape)},
            unet=UNET,
            diffusion=DIFFUSION,
        )
        files[m] = load_diffusion_model(tmp_path / f"{m}.pt", kind="single")
    joint = build_joint_unet(UNET, JOINT, shapes(ctx, fut))
    joint.load_branches(stage1_branch_states(files))
    x, t, c = latent_inputs(shapes(ctx, fut))
    out = joint(x, t, c)
    for m in ("rgb", "depth"):  # zero-initialised cross-attention: the branches are the stage-1 models
        torch.testing.assert_close(out[m], files[m].build()(x[m], t, c[m]))
    with pytest.raises(ModelFileError, match="not a stage-1 model of 'depth'"):
        stage1_branch_states({"depth": files["rgb"]})


def test_wrong_or_missing_files_fail_clearly(tmp_path):
    ctx, fut = autoencoders()
    with pytest.raises(ModelFileError, match="does not exist"):
        load_diffusion_model(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError, match="junk.pt is not a model file this project wrote .truncated or foreign"):
        load_diffusion_model(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="a other file, not a syncvp-diffusion file"):
        load_diffusion_model(tmp_path / "other.pt")
    unet = single_model(ctx, fut, "rgb")
    save_diffusion_model(
        tmp_path / "rgb.pt",
        unet,
        shapes={"rgb": (fut["rgb"].latent_shape, ctx["rgb"].latent_shape)},
        unet=UNET,
        diffusion=DIFFUSION,
    )
    with pytest.raises(ModelFileError, match="holds a single model, a joint model is needed"):
        load_diffusion_model(tmp_path / "rgb.pt", kind="joint")
    with pytest.raises(ValueError, match="takes no `joint`"):
        save_diffusion_model(
            tmp_path / "x.pt",
            unet,
            shapes={"rgb": (fut["rgb"].latent_shape, None)},
            unet=UNET,
            diffusion=DIFFUSION,
            joint=JOINT,
        )


def test_load_predictor_wires_files_and_checks_autoencoders(tmp_path):
    ctx, fut = autoencoders()
    model = joint_model(ctx, fut)
    save_diffusion_model(
        tmp_path / "joint.pt", model, shapes=shapes(ctx, fut), unet=UNET, diffusion=DIFFUSION, joint=JOINT
    )
    paths = {}
    for m in ("rgb", "depth"):
        paths[m] = RolePair(
            context=save_autoencoder(tmp_path / f"{m}-context.pt", ctx[m]),
            future=save_autoencoder(tmp_path / f"{m}-future.pt", fut[m]),
        )
    p = load_predictor(tmp_path / "joint.pt", paths, SAMPLING, quantize=["rgb"])
    assert p.sampler.steps == SAMPLING.steps and p.sampler.same_noise is JOINT.same_noise
    out = p.rollout(context_clips(), 4, generator=torch.Generator().manual_seed(0))
    assert out["rgb"].shape == (2, 1, 3, 4, 8, 8)
    swapped = {"rgb": RolePair(context=paths["rgb"].future, future=paths["rgb"].future), "depth": paths["depth"]}
    with pytest.raises(ModelFileError, match="context autoencoder of 'rgb' has latent"):
        load_predictor(tmp_path / "joint.pt", swapped, SAMPLING)
    with pytest.raises(ModelFileError, match="autoencoders were given for"):
        load_predictor(tmp_path / "joint.pt", {"rgb": paths["rgb"]}, SAMPLING)
