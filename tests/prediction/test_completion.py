"""Modality completion (`Predictor.complete`): the chunk plan (still prefix, completed frames fed
back as context, end-aligned last chunk), the given future reaching the sampler, shapes,
determinism, errors; `complete_folder` files in, files out."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from syncvp.config.roles import RolePair
from syncvp.models.autoencoder import save_autoencoder
from syncvp.models.diffusion_file import save_diffusion_model
from syncvp.prediction import Predictor, rollout
from syncvp.prediction.api import PredictionInputError, complete_folder
from syncvp.training import fastpath
from tests.prediction.conftest import CHANNELS, DIFFUSION, JOINT, SAMPLING, UNET, shapes
from tests.prediction.test_cuda_graph_sampler import Recording
from tests.prediction.test_rollout import predictor
from tests.training.test_compile_guard import Backend


def video(frames: int, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.rand(batch, c, frames, 8, 8, generator=g) * 2 - 1 for m, c in CHANNELS.items()}


class Recorder:
    """Wraps `sample_chunk` and records what each chunk was given."""

    def __init__(self, p: Predictor):
        self.calls, self.inner = [], p.sample_chunk

    def __call__(self, context, present, generator, batch=None, progress=None, **kw):
        self.calls.append(({m: v.clone() for m, v in context.items()}, present, kw))
        return self.inner(context, present, generator, batch, progress, **kw)


@pytest.mark.parametrize("total", [2, 3, 7, 9])
def test_chunk_plan_and_shapes(total):
    p = predictor(context_frames=2, future_frames=3)
    rec = Recorder(p)
    p.sample_chunk = rec
    given = video(total)
    out = p.complete({"rgb": given["rgb"]}, generator=torch.Generator().manual_seed(0), trajectories=2)
    assert set(out) == {"depth"} and out["depth"].shape == (2, 2, 1, total, 8, 8)
    rgb = given["rgb"].repeat_interleave(2, dim=0)
    first, present, kw = rec.calls[0]
    # chunk 1: the first frame held still as context, depth unobserved, the first 3 frames known
    assert present == {"rgb"} and set(first) == {"rgb"}
    assert torch.equal(first["rgb"], rgb[:, :, :1].expand(-1, -1, 2, -1, -1))
    known = kw["known"]["rgb"]
    pad = rgb[:, :, -1:].expand(-1, -1, max(0, 3 - total), -1, -1)
    assert torch.equal(known, torch.cat([rgb, pad], dim=2)[:, :, :3])
    starts = [0]
    while starts[-1] + 3 < max(total, 3):
        starts.append(min(starts[-1] + 3, total - 3))
    assert len(rec.calls) == len(starts)
    for start, (ctx, present, kw) in zip(starts[1:], rec.calls[1:]):
        # later chunks: the true rgb frames before the chunk and the depth completed for them
        assert present == {"rgb", "depth"}
        assert torch.equal(ctx["rgb"], rgb[:, :, start - 2 : start])
        assert torch.equal(kw["known"]["rgb"], rgb[:, :, start : start + 3])
        done = out["depth"].reshape(4, 1, total, 8, 8)
        assert torch.equal(ctx["depth"], done[:, :, start - 2 : start])


def test_deterministic_and_the_given_future_matters():
    p = predictor(quantize=("depth",))
    given = video(6)

    def run(rgb, seed=0):
        return p.complete({"rgb": rgb}, generator=torch.Generator().manual_seed(seed))["depth"]

    a = run(given["rgb"])
    assert torch.equal(a, run(given["rgb"]))
    assert not torch.equal(a, run(given["rgb"], seed=1))
    changed = given["rgb"].clone()
    changed[:, :, 2:] = -changed[:, :, 2:]  # the same first context, another future
    assert not torch.equal(a[:, :, :, :3], run(changed)[:, :, :, :3])
    assert torch.equal(a, (a * 127.5 + 127.5).round() / 127.5 - 1)  # snapped to uint8 levels


@pytest.mark.parametrize("method", ["context", "replace"])
def test_methods_steps_and_resampling_run(method):
    p = predictor()
    sampler = dataclasses.replace(p.sampler, steps=2)
    out = p.complete(
        {"depth": video(4)["depth"]},
        generator=torch.Generator().manual_seed(0),
        sampler=sampler,
        resample=2,
        known_as_context=method == "context",
    )
    assert out["rgb"].shape == (2, 1, 3, 4, 8, 8) and out["rgb"].abs().max() <= 1


def test_completion_errors():
    p = predictor()
    both = video(4)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="some but not all"):
        p.complete(both, generator=gen)
    with pytest.raises(ValueError, match="some but not all"):  # a given modality must be one of the model's
        p.complete({"semantic": both["rgb"]}, generator=gen)
    with pytest.raises(ValueError, match="joint model"):
        predictor(single="rgb").complete({"rgb": both["rgb"]}, generator=gen)


def test_complete_folder_writes_every_frame(tmp_path, monkeypatch):
    p = predictor()
    ctx, fut = p.context_autoencoders, p.future_autoencoders
    aes = {}
    for m in CHANNELS:
        aes[m] = RolePair(
            context=save_autoencoder(tmp_path / f"{m}-context.pt", ctx[m]),
            future=save_autoencoder(tmp_path / f"{m}-future.pt", fut[m]),
        )
    save_diffusion_model(
        tmp_path / "joint.pt", p.model, shapes=shapes(ctx, fut), unet=UNET, diffusion=DIFFUSION, joint=JOINT
    )
    (tmp_path / "in" / "rgb").mkdir(parents=True)
    for i in range(5):
        cv2.imwrite(str(tmp_path / "in" / "rgb" / f"{i:02d}.png"), np.full((8, 8, 3), 40 * i, np.uint8))
    kw = dict(model=tmp_path / "joint.pt", autoencoders=aes, sampling=SAMPLING, trajectories=2)
    out = complete_folder(tmp_path / "in", tmp_path / "out", given=["rgb"], **kw)
    assert out["depth"].shape == (2, 5, 8, 8, 1) and out["depth"].dtype == np.uint8
    assert len(list((tmp_path / "out" / "depth" / "traj1").glob("*.png"))) == 5
    for name in ("prediction.gif", "completion.gif", "spread.npz", "depth/format.json"):
        assert (tmp_path / "out" / name).is_file()
    with pytest.raises(PredictionInputError, match="some but not all"):
        complete_folder(tmp_path / "in", tmp_path / "out2", given=["rgb", "depth"], **kw)
    with pytest.raises(PredictionInputError, match="missing"):
        complete_folder(tmp_path / "in", tmp_path / "out3", given=["depth"], **kw)
    # run.compile (the CLI passes it from params): a compiler that fails warns once, the completion is eager's
    backend, warnings = Backend(), []
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", backend)
    again = complete_folder(tmp_path / "in", tmp_path / "out4", given=["rgb"], compile=True, warn=warnings.append, **kw)
    assert backend.calls == 1 and len(warnings) == 1 and "torch.compile failed for JointUNet" in warnings[0]
    np.testing.assert_array_equal(again["depth"], out["depth"])
    # run.cuda_graphs (the CLI passes it from params): one GraphedDenoiser per chunk; on CPU the plain completion
    Recording.made = []
    monkeypatch.setattr(rollout, "GraphedDenoiser", Recording)
    graphed = complete_folder(tmp_path / "in", tmp_path / "out5", given=["rgb"], cuda_graphs=True, **kw)
    assert Recording.made and all(r.calls > 0 for r in Recording.made)
    np.testing.assert_array_equal(graphed["depth"], out["depth"])
