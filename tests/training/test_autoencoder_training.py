"""Autoencoder training: overfitting one clip, the discriminator schedule, kill-and-resume ==
uninterrupted, fresh start on a changed configuration, and the exported outputs."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pipelines.live import LiveCurves
from syncvp.io.checkpoint import load_checkpoint
from syncvp.io.weights import MissingWeightsError
from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder, load_autoencoder
from syncvp.training import autoencoder_job, autoencoder_train
from syncvp.training.autoencoder import AutoencoderObjective, build_discriminators
from syncvp.training.loop import fit
from syncvp.training.state import TrainState
from tests.training.stores import write_tiny_stores

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run faster on one thread (and do not stall on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def moving_square_clip(frames: int = 4, size: int = 16) -> torch.Tensor:
    """[1, 3, T, H, W] in [-1, 1]: a coloured square sliding over a gradient."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    clip = torch.zeros(3, frames, size, size)
    for t in range(frames):
        square = ((x - 2 - 2 * t).abs() < 3) & ((y - 6).abs() < 3)
        clip[0, t] = x / size
        clip[1, t] = square.float()
        clip[2, t] = 1 - y / size
    return (clip * 2 - 1)[None]


def tiny_spec(**changes) -> AutoencoderSpec:
    base = dict(
        channels=3,
        frames=4,
        resolution=(16, 16),
        width=32,
        depth=1,
        heads=2,
        head_dim=16,
        ff_mult=2,
        axis_depth=1,
        axis_heads=2,
        axis_head_dim=16,
        axis_mlp=32,
        patch_size=4,
        latent_channels=8,
        gray_to_rgb=False,
        axis_token="clean",
    )
    return AutoencoderSpec.from_dict({**base, **changes})


def test_tiny_autoencoder_overfits_one_clip():
    torch.manual_seed(0)
    model = TriplaneAutoencoder(tiny_spec())
    clip = moving_square_clip()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.5, 0.9))
    state = TrainState(models={"autoencoder": model}, optimizers={"autoencoder": opt})
    objective = AutoencoderObjective(
        model, "x", frame_generator=torch.Generator().manual_seed(0), pixel_weight=1.0, perceptual_weight=0.0
    )
    with torch.no_grad():
        before = (model(clip)[0] - clip).abs().mean()
    fit(state, objective.updates(), iter(lambda: {"x": clip}, None), total_steps=150, device=CPU)
    with torch.no_grad():
        after = (model(clip)[0] - clip).abs().mean()
    assert before / after > 5, (float(before), float(after))


def test_discriminators_do_not_run_before_disc_start():
    torch.manual_seed(0)
    model = TriplaneAutoencoder(tiny_spec(width=16, head_dim=8, axis_head_dim=8))
    discs = build_discriminators(3, ndf=4, layers=1)
    calls = []
    for name, d in discs.items():
        d.register_forward_pre_hook(lambda module, args, name=name: calls.append((state.step, name)))
    opts = {
        "autoencoder": torch.optim.AdamW(model.parameters(), lr=1e-3),
        "discriminator": torch.optim.AdamW(discs.parameters(), lr=1e-3),
    }
    state = TrainState(models={"autoencoder": model, "discriminators": discs}, optimizers=opts)
    objective = AutoencoderObjective(
        model,
        "x",
        frame_generator=torch.Generator().manual_seed(0),
        pixel_weight=4.0,
        perceptual_weight=0.0,
        discriminators=discs,
        disc_start=2,
    )
    clip = moving_square_clip()
    seen = []
    fit(
        state,
        objective.updates(),
        iter(lambda: {"x": clip}, None),
        total_steps=4,
        device=CPU,
        callbacks=[lambda s, m: seen.append(sorted(m))],
    )
    assert {step for step, _ in calls} == {2, 3}
    assert {name for _, name in calls} == {"image", "video"}
    assert "gan" not in seen[1] and "discriminator/loss" not in seen[1]
    assert {"gan", "fm", "discriminator/loss", "hinge_image", "hinge_video"} <= set(seen[2])


# --------------------------------------------------------------------------------------------
# Whole units on a tiny clip store


def tiny_job(params, unit="synthetic-rgb-context", **train_changes) -> autoencoder_job.AutoencoderJob:
    ae = dataclasses.replace(
        params.autoencoder,
        width=16,
        depth=1,
        heads=2,
        head_dim=8,
        axis_heads=1,
        axis_head_dim=8,
        axis_mlp=16,
        latent_channels=4,
    )
    changes = dict(steps=6, batch_size=2, grad_accum=2, eval_every=3, eval_clips=2, checkpoint_every=3, log_every=2)
    changes.update(train_changes)
    train = dataclasses.replace(params.train_autoencoder, **changes)
    run = dataclasses.replace(params.run, device="cpu")
    return autoencoder_job.plan(
        unit,
        dataset=params.datasets["synthetic"],
        autoencoder=ae,
        train=train,
        run=run,
        paths=params.paths,
        lpips_vgg16=None,
    )


class Killed(Exception):
    pass


def kill_at(phase: str, step: int):
    """A progress callback that dies right after `step` of `phase` (as a SIGKILL would, between checkpoints)."""

    def progress(event):
        if phase in event.task and event.done == step and not event.message:
            raise Killed(step)

    return progress


def final_weights(job) -> dict:
    return load_checkpoint(job.checkpoint_path(job.final_phase))["models"]


@pytest.mark.parametrize("gan", [False, True])
def test_kill_and_resume_equals_uninterrupted(tiny_params, tmp_path, gan):
    write_tiny_stores(tiny_params.paths)
    gan_cfg = dataclasses.replace(
        tiny_params.train_autoencoder.gan, enabled=gan, steps=5, disc_start=1, ndf=4, disc_layers=1
    )
    straight = tiny_job(tiny_params, gan=gan_cfg)
    straight_live = LiveCurves(tmp_path / "straight-live", autoencoder_train.curve_point)
    autoencoder_train.train(straight, progress=straight_live)
    expected = final_weights(straight)

    moved = dataclasses.replace(tiny_params.paths, models=tmp_path / "other-models")
    job = tiny_job(dataclasses.replace(tiny_params, paths=moved), gan=gan_cfg)
    logs = []

    def live_then(kill):  # each (re)start is a new process: a new sink on the same DVCLive folder
        sink = LiveCurves(tmp_path / "live", autoencoder_train.curve_point)
        return lambda event: (sink(event), kill(event))

    with pytest.raises(Killed):  # after step 5: the last checkpoint is step 3's
        autoencoder_train.train(job, progress=live_then(kill_at("reconstruct", 5)), log=logs.append)
    if gan:  # resume, finish reconstruction, die inside the fine-tune (6 + 4)
        with pytest.raises(Killed):
            autoencoder_train.train(job, progress=live_then(kill_at("finetune_gan", 6 + 4)), log=logs.append)
    autoencoder_train.train(job, progress=live_then(lambda event: None), log=logs.append)
    assert sum("resumed" in line for line in logs) == (3 if gan else 1), logs
    got = final_weights(job)
    assert set(got) == ({"autoencoder", "discriminators"} if gan else {"autoencoder"})
    for model in expected:
        for key, value in expected[model].items():
            assert torch.equal(value, got[model][key]), f"{model}.{key} differs after resuming"
    # the step-wise curves: the same DVCLive files while training (rows past the checkpoint
    # dropped on resume) and after the flow's rewrite from the checkpointed history
    assert tree(tmp_path / "live") == tree(tmp_path / "straight-live")
    series = autoencoder_train.curve_series(job)
    assert series == autoencoder_train.curve_series(straight)
    assert [s for s, _ in series["psnr"]] == ([0, 3, 6, 9, 11] if gan else [0, 3, 6])
    LiveCurves(tmp_path / "live", autoencoder_train.curve_point).rewrite(series)
    LiveCurves(tmp_path / "straight-live", autoencoder_train.curve_point).rewrite(series)
    assert tree(tmp_path / "live") == tree(tmp_path / "straight-live")


def tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_changed_configuration_starts_fresh_and_export_writes_outputs(tiny_params):
    write_tiny_stores(tiny_params.paths)
    job = tiny_job(tiny_params)
    with pytest.raises(Killed):
        autoencoder_train.train(job, progress=kill_at("reconstruct", 4))
    assert load_checkpoint(job.checkpoint_path("reconstruct"))["step"] == 3
    changed = tiny_job(tiny_params, lr=5e-4)
    logs = []
    autoencoder_train.train(changed, log=logs.append)
    assert any("another configuration" in line and "from scratch" in line for line in logs), logs
    out = tiny_params.paths.model_dir(changed.unit)
    series = autoencoder_train.curve_series(changed)  # before export, which retires the checkpoints
    assert [s for s, _ in series["psnr"]] == [0, 3, 6] and [s for s, _ in series["loss"]][0] > 0
    metrics = autoencoder_train.export(changed, out)
    assert {p.name for p in out.iterdir()} == {"autoencoder.pt", "metrics.json", "reconstruction.png", "work"}
    assert [p.name for p in (out / "work").iterdir()] == ["status.json"], "finished runs are never resumed"
    assert json.loads((out / "metrics.json").read_text())["psnr"] == pytest.approx(metrics["psnr"])
    # an image modality also gets the paper's scores (truncated uint8, batch min-max); PSNR is on the
    # float reconstruction in both, averaged over equal batches here
    assert 0 < metrics["ssim_paper"] <= 1 and metrics["psnr_paper"] == pytest.approx(metrics["psnr"], rel=1e-9)
    model = load_autoencoder(out / "autoencoder.pt")
    assert model.spec == changed.spec
    with pytest.raises(FileNotFoundError, match="train the unit first"):
        autoencoder_train.export(changed, out)


def test_plan_checks_unit_store_and_weights(tiny_params, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="dvc repro prepare@synthetic"):
        tiny_job(tiny_params)
    write_tiny_stores(tiny_params.paths)
    with pytest.raises(ValueError, match="expected <dataset>-<one of"):
        tiny_job(tiny_params, unit="synthetic-semantic-context")
    job = tiny_job(tiny_params, unit="synthetic-depth-future")
    assert (job.spec.channels, job.spec.frames, job.role) == (1, 8, "future")
    ae, train = tiny_params.autoencoder, tiny_params.train_autoencoder
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        autoencoder_job.plan(
            "synthetic-rgb-future",
            dataset=tiny_params.datasets["synthetic"],
            autoencoder=ae,
            train=train,
            run=tiny_params.run,
            paths=tiny_params.paths,
            lpips_vgg16=tmp_path / "missing.pth",
        )
    assert job.fingerprint("reconstruct") == tiny_job(
        tiny_params, unit="synthetic-depth-future", eval_every=1, log_every=5
    ).fingerprint("reconstruct")
    assert job.fingerprint("reconstruct") != tiny_job(tiny_params, unit="synthetic-depth-future", steps=7).fingerprint(
        "reconstruct"
    )
    other_code = job.fingerprint("reconstruct")
    monkeypatch.setattr(autoencoder_job, "code_digest", lambda: "other code")
    assert tiny_job(tiny_params, unit="synthetic-depth-future").fingerprint("reconstruct") != other_code


def test_streams_release_their_store_handles(tiny_params):
    """A phase closes its stream's file handle, so the next phase (or unit) in the same process
    never holds two HDF5 handles on one store (that pattern crashed later opens of the file)."""
    from syncvp.data.dataset import ClipDataset
    from syncvp.training.data import BatchStream

    write_tiny_stores(tiny_params.paths)
    data = ClipDataset(tiny_params.paths.store("synthetic", "train"), ["rgb"], 2, seed=0)
    stream = BatchStream(data, batch_size=2, seed=0)
    assert next(stream)["rgb"].shape == (2, 3, 2, 16, 16)
    assert data.reader._handle is not None
    stream.close()
    assert data.reader._handle is None
    assert next(stream)["rgb"].shape == (2, 3, 2, 16, 16), "a closed stream reopens on demand, in order"
    assert stream.state_dict()["batches"] == 2


@pytest.mark.gpu
def test_bf16_autocast_training_on_cuda():
    """On CUDA with amp the attention runs in bf16, the loss stays finite and the weights (fp32) move."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = TriplaneAutoencoder(tiny_spec()).to(device)
    dtypes = []
    model.encoder.blocks[0].space_attn.out.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    state = TrainState(
        models={"autoencoder": model}, optimizers={"autoencoder": torch.optim.AdamW(model.parameters(), lr=1e-3)}
    )
    objective = AutoencoderObjective(
        model, "x", frame_generator=torch.Generator().manual_seed(0), pixel_weight=1.0, perceptual_weight=0.0
    )
    before = model.patch_embed.weight.detach().clone()
    losses = []
    fit(
        state,
        objective.updates(),
        iter(lambda: {"x": moving_square_clip()}, None),
        total_steps=3,
        device=device,
        amp=True,
        callbacks=[lambda s, m: losses.append(m["autoencoder/loss"])],
    )
    assert dtypes and all(d == torch.bfloat16 for d in dtypes)
    assert all(torch.isfinite(torch.tensor(losses))) and model.patch_embed.weight.dtype == torch.float32
    assert not torch.equal(before, model.patch_embed.weight.detach())
