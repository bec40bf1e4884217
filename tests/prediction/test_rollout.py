"""Autoregressive rollout: frame counts for any context/chunk sizes, missing modalities,
trajectories, determinism, uint8 snapping, and the guidance path."""

from __future__ import annotations

import pytest
import torch

from syncvp.data.transforms import image_to_model, model_to_image
from syncvp.diffusion.factory import build_sampler
from syncvp.prediction import Predictor, quantize_uint8
from tests.prediction.conftest import (
    CHANNELS,
    DIFFUSION,
    SAMPLING,
    autoencoders,
    context_clips,
    joint_model,
    single_model,
)


def predictor(context_frames=2, future_frames=3, *, guidance=0.0, quantize=(), single=None):
    ctx, fut = autoencoders(context_frames, future_frames)
    sampler = build_sampler(SAMPLING, DIFFUSION, same_noise=True)
    if single is not None:
        return Predictor(
            context_autoencoders={single: ctx[single]},
            future_autoencoders={single: fut[single]},
            model=single_model(ctx, fut, single),
            sampler=sampler,
            guidance_weight=guidance,
            quantize=frozenset(quantize),
        )
    return Predictor(
        context_autoencoders=ctx,
        future_autoencoders=fut,
        model=joint_model(ctx, fut),
        sampler=sampler,
        guidance_weight=guidance,
        quantize=frozenset(quantize),
    )


@pytest.mark.parametrize("context_frames,future_frames,frames", [(2, 3, 1), (2, 3, 3), (2, 3, 7), (1, 2, 5), (3, 2, 4)])
def test_rollout_returns_exactly_the_requested_frames(context_frames, future_frames, frames):
    p = predictor(context_frames, future_frames)
    out = p.rollout(
        context_clips(frames=context_frames + 1), frames, generator=torch.Generator().manual_seed(0), trajectories=2
    )
    for m, c in CHANNELS.items():
        assert out[m].shape == (2, 2, c, frames, 8, 8)
        assert out[m].abs().max() <= 1.0


def test_chunks_are_chained_on_the_last_predicted_frames():
    """The second chunk must be conditioned on the first chunk's last frames, not on the input."""
    p = predictor(2, 3)
    calls = []
    original = p.sample_chunk  # the rollout samples each chunk here (predict_chunk = sample + decode)

    def spy(ctx, present, generator, *args, **kwargs):
        calls.append({m: v.clone() for m, v in ctx.items()})
        return original(ctx, present, generator, *args, **kwargs)

    p.sample_chunk = spy
    out = p.rollout(context_clips(), 6, generator=torch.Generator().manual_seed(0))
    assert len(calls) == 2
    for m in CHANNELS:
        torch.testing.assert_close(calls[1][m], out[m][:, 0, :, 1:3])


def test_same_generator_state_gives_same_predictions():
    p = predictor()
    a = p.rollout(context_clips(), 4, generator=torch.Generator().manual_seed(3))
    b = p.rollout(context_clips(), 4, generator=torch.Generator().manual_seed(3))
    c = p.rollout(context_clips(), 4, generator=torch.Generator().manual_seed(4))
    for m in CHANNELS:
        assert torch.equal(a[m], b[m])
        assert not torch.equal(a[m], c[m])


@pytest.mark.parametrize("present", [("rgb",), ("depth",)])
def test_missing_modality_prediction_runs_without_its_context(present):
    p = predictor(2, 3)
    clips = {m: v for m, v in context_clips().items() if m in present}
    out = p.rollout(clips, 5, generator=torch.Generator().manual_seed(0), present=present)
    for m, c in CHANNELS.items():
        assert out[m].shape == (2, 1, c, 5, 8, 8)
        assert torch.isfinite(out[m]).all()


def test_missing_modality_is_zero_conditioning_for_the_first_chunk():
    """Predicting with depth missing equals predicting with a context whose depth latent is zero."""
    p = predictor(2, 3)
    clips = context_clips()
    seen = {}
    model = p.model
    forward = model.forward

    def spy(x, t, context=None):
        seen.setdefault("context", {m: v.clone() for m, v in context.items()})
        return forward(x, t, context)

    model.forward = spy
    p.rollout({"rgb": clips["rgb"]}, 3, generator=torch.Generator().manual_seed(0), present=["rgb"])
    assert seen["context"]["depth"].abs().max() == 0
    assert seen["context"]["rgb"].abs().max() > 0


def test_trajectories_differ_and_keep_video_order():
    p = predictor()
    out = p.rollout(context_clips(batch=2), 3, generator=torch.Generator().manual_seed(0), trajectories=3)
    assert not torch.equal(out["rgb"][0, 0], out["rgb"][0, 1])
    # the same video repeated gives trajectories drawn in the same order as separate videos
    clips = {m: v[:1].repeat(2, 1, 1, 1, 1) for m, v in context_clips().items()}
    single = p.rollout(clips, 3, generator=torch.Generator().manual_seed(0))
    assert single["rgb"].shape == (2, 1, 3, 3, 8, 8)


def test_quantize_snaps_to_uint8_levels():
    p = predictor(quantize=("rgb",))
    out = p.rollout(context_clips(), 3, generator=torch.Generator().manual_seed(0))
    levels = (out["rgb"] + 1) * 127.5
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)
    depth = (out["depth"] + 1) * 127.5
    assert (depth - depth.round()).abs().max() > 1e-3
    x = torch.linspace(-1.2, 1.2, 1001)  # agrees with writing uint8 (model_to_image) and reading back
    stored = image_to_model(model_to_image(x.numpy()))
    torch.testing.assert_close(quantize_uint8(x), torch.from_numpy(stored), atol=1e-6, rtol=0)


def test_guidance_runs_and_changes_the_prediction():
    plain = predictor(guidance=0.0)
    guided = predictor(guidance=1.5)
    a = plain.rollout(context_clips(), 3, generator=torch.Generator().manual_seed(0))
    b = guided.rollout(context_clips(), 3, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a["rgb"], b["rgb"])


@pytest.mark.parametrize("guidance", [0.0, 1.0])
def test_stage1_model_predicts_one_modality(guidance):
    p = predictor(single="depth", guidance=guidance)
    out = p.rollout({"depth": context_clips()["depth"]}, 4, generator=torch.Generator().manual_seed(0))
    assert set(out) == {"depth"} and out["depth"].shape == (2, 1, 1, 4, 8, 8)


def test_stage1_model_of_an_unobserved_modality_needs_only_the_batch_size():
    """No context at all: zero conditioning for the first chunk, then its own predictions (`batch` = B)."""
    p = predictor(2, 3, single="depth")
    seen = []
    forward = p.model.forward

    def spy(x, t, context=None):
        seen.append(context.clone())
        return forward(x, t, context)

    p.model.forward = spy
    with pytest.raises(ValueError, match="at least one modality must be present"):
        p.rollout({}, 5, generator=torch.Generator().manual_seed(0), present=())
    out = p.rollout({}, 5, generator=torch.Generator().manual_seed(0), present=(), trajectories=2, batch=3)
    assert out["depth"].shape == (3, 2, 1, 5, 8, 8) and torch.isfinite(out["depth"]).all()
    steps = len(seen) // 2  # two chunks of the same number of denoising steps
    assert all(c.abs().max() == 0 for c in seen[:steps]) and seen[0].shape[0] == 6
    second = seen[steps]
    seen.clear()  # the second chunk is conditioned as an observed context of its own first-chunk frames is
    own = out["depth"][:, :, :, 1:3].reshape(6, 1, 2, 8, 8)
    p.rollout({"depth": own}, 1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(second, seen[0])
    again = p.rollout({}, 5, generator=torch.Generator().manual_seed(0), present=(), trajectories=2, batch=3)
    assert torch.equal(out["depth"], again["depth"])


def test_bad_inputs_fail_clearly():
    p = predictor()
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="have no context frames"):
        p.rollout({"rgb": context_clips()["rgb"]}, 3, generator=g)
    with pytest.raises(ValueError, match=r"context 'rgb' must be \[B, 3, >= 2, 8, 8\]"):
        p.rollout({**context_clips(), "rgb": torch.zeros(2, 3, 1, 8, 8)}, 3, generator=g)
    with pytest.raises(ValueError, match="frames must be >= 1"):
        p.rollout(context_clips(), 0, generator=g)
    with pytest.raises(ValueError, match="outside"):
        p.rollout(context_clips(), 3, generator=g, present=["rgb", "flow"])
    with pytest.raises(ValueError, match="quantize names"):
        predictor(quantize=("flow",))


def test_pixel_anchor_adds_the_decoded_change_to_the_flow_extrapolation():
    """With anchor "pixels", a sample that changes nothing (x0 = 0 in the residual space) predicts
    exactly the flow-extrapolated frames; with "latent", the decoded conditioning latent. Any
    other sample adds D(sample) - D(conditioning) to those frames."""
    from types import SimpleNamespace

    from syncvp.diffusion.target import DiffusionTarget
    from syncvp.models.context import encode_context, flow_extrapolate

    _, fut = autoencoders(2, 3)
    m = "rgb"
    context = {m: context_clips(frames=2)[m] * 0.5}

    def made(anchor, sample, extrapolation="flow"):
        p = Predictor(
            context_autoencoders={m: fut[m]},
            future_autoencoders={m: fut[m]},
            model=single_model(fut, fut, m),
            sampler=build_sampler(SAMPLING, DIFFUSION, same_noise=True),
            context_encoder="future",
            context_extrapolation=extrapolation,
            anchor=anchor,
            target=DiffusionTarget(residual=True),
            context_frames=2,
        )
        if sample is not None:
            p.sampler = SimpleNamespace(sample=lambda *a, **k: SimpleNamespace(sample={m: sample}))
        return p

    cond = encode_context(context[m], "future", None, fut[m], extrapolation="flow")
    still = torch.zeros_like(cond)
    gen = torch.Generator().manual_seed(0)
    pixels = made("pixels", still).predict_chunk(context, frozenset([m]), gen)[m]
    torch.testing.assert_close(pixels, flow_extrapolate(context[m], 3).clamp(-1, 1))
    latent = made("latent", still).predict_chunk(context, frozenset([m]), gen)[m]
    torch.testing.assert_close(latent, fut[m].decode(cond).clamp(-1, 1))
    change = 0.3 * torch.randn(cond.shape, generator=torch.Generator().manual_seed(1))
    moved = made("pixels", change).predict_chunk(context, frozenset([m]), gen)[m]
    expected = flow_extrapolate(context[m], 3) + fut[m].decode((cond + change).clamp(-1, 1)) - fut[m].decode(cond)
    torch.testing.assert_close(moved, expected.clamp(-1, 1))
    # the real sampler runs through the same path
    assert made("pixels", None).predict_chunk(context, frozenset([m]), gen)[m].shape == (2, 3, 3, 8, 8)
    assert made("pixels", None).anchored and not made("latent", None).anchored
    # a model without extrapolated frames (the held context) is decoded as it is
    held = made("pixels", None, "hold")
    assert held.anchored == frozenset()
    # per modality: only the modalities carried along their flow are anchored
    assert made("pixels", None, {m: "flow"}).anchored == {m}
    assert made("pixels", None, {}).anchored == frozenset()
