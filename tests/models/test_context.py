"""How context frames become the conditioning latent (`syncvp.models.context`)."""

from __future__ import annotations

import pytest
import torch

from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder
from syncvp.models.context import (
    conditioning_clip,
    context_latent_shape,
    encode_context,
    flow_extrapolate,
    gaussian_blur,
    hold_last,
    optical_flow,
    warp,
)


def _ae(frames: int, seed: int) -> TriplaneAutoencoder:
    torch.manual_seed(seed)
    spec = AutoencoderSpec.from_dict(dict(channels=1, frames=frames, resolution=(8, 8), width=16, depth=1, heads=2,
                                          head_dim=8, ff_mult=2, axis_depth=1, axis_heads=2, axis_head_dim=8,
                                          axis_mlp=16, patch_size=4, latent_channels=4, gray_to_rgb=False,
                                          axis_token="clean"))
    return TriplaneAutoencoder(spec).eval()


def test_hold_last_repeats_the_last_frame():
    ctx = torch.arange(2 * 1 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 1, 3, 2, 2)
    held = hold_last(ctx, 5)
    assert held.shape == (2, 1, 5, 2, 2)
    assert torch.equal(held[:, :, :3], ctx)
    for t in (3, 4):
        assert torch.equal(held[:, :, t], ctx[:, :, 2])
    assert torch.equal(hold_last(ctx, 2), ctx[:, :, 1:])   # shorter: the last frames
    assert torch.equal(hold_last(ctx, 3), ctx)


@pytest.mark.parametrize("bad", [torch.zeros(1, 1, 0, 2, 2), torch.zeros(1, 2, 2, 2)])
def test_hold_last_rejects_bad_shapes(bad):
    with pytest.raises(ValueError, match="context must be"):
        hold_last(bad, 4)


def test_encode_context_by_either_autoencoder():
    context_ae, future_ae = _ae(2, 0), _ae(4, 1)
    clip = torch.rand(3, 1, 2, 8, 8) * 2 - 1
    with torch.no_grad():
        by_context = encode_context(clip, "context", context_ae, future_ae)
        by_future = encode_context(clip, "future", None, future_ae)
        assert torch.equal(by_context, context_ae.encode(clip))
        assert torch.equal(by_future, future_ae.encode(hold_last(clip, 4)))
    assert by_future.shape[1:] == (4, future_ae.latent_shape.length)
    assert context_latent_shape("future", None, future_ae) == future_ae.latent_shape
    assert context_latent_shape("context", context_ae, future_ae) == context_ae.latent_shape
    with pytest.raises(ValueError, match="needs the context autoencoder"):
        encode_context(clip, "context", None, future_ae)


def test_motion_channels_are_the_change_between_the_last_two_frames_held_still():
    future_ae = _ae(4, 1)
    clip = torch.rand(3, 1, 3, 8, 8) * 2 - 1
    with torch.no_grad():
        cond = encode_context(clip, "future", None, future_ae, motion=True)
        still = lambda frame: future_ae.encode(frame[:, :, None].expand(-1, -1, 4, -1, -1))   # noqa: E731
        torch.testing.assert_close(cond[:, :4], future_ae.encode(hold_last(clip, 4)))
        torch.testing.assert_close(cond[:, 4:], still(clip[:, :, 2]) - still(clip[:, :, 1]), rtol=1e-5, atol=1e-6)
        # a scene that stands still has no motion; the held part alone is the plain conditioning
        frozen = clip[:, :, 2:].expand(-1, -1, 3, -1, -1)
        assert encode_context(frozen, "future", None, future_ae, motion=True)[:, 4:].abs().max() < 1e-6
        torch.testing.assert_close(cond[:, :4], encode_context(clip, "future", None, future_ae))
    assert context_latent_shape("future", None, future_ae, motion=True) == future_ae.latent_shape.with_channels(8)
    with pytest.raises(ValueError, match="motion channels need context_encoder 'future'"):
        context_latent_shape("context", _ae(2, 0), future_ae, motion=True)
    with pytest.raises(ValueError, match=">= 2 context frames"):
        encode_context(clip[:, :, :1], "future", None, future_ae, motion=True)


def _moving_blob(frames: int, velocity: tuple[float, float], size: int = 32, channels: int = 3) -> torch.Tensor:
    """[1, C, frames, size, size] in [-1, 1]: a smooth textured pattern translating at `velocity`
    (x, y) pixels per frame."""
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                            indexing="ij")
    out = []
    for t in range(frames):
        x, y = xs - velocity[0] * t, ys - velocity[1] * t
        blob = torch.exp(-((x - 12) ** 2 + (y - 14) ** 2) / 18) - 0.8 * torch.exp(-((x - 20) ** 2 + (y - 18) ** 2) / 12)
        texture = 0.2 * torch.sin(x / 2.3) * torch.cos(y / 3.1)
        frame = (blob + texture).clamp(-1, 1)
        out.append(torch.stack([frame * (0.6 + 0.2 * c) for c in range(channels)]))
    return torch.stack(out, dim=1)[None].float()


def test_warp_by_zero_and_by_whole_pixels():
    frame = torch.arange(2 * 5 * 6, dtype=torch.float32).reshape(1, 2, 5, 6)
    zero = torch.zeros(1, 2, 5, 6)
    torch.testing.assert_close(warp(frame, zero), frame)
    right = zero.clone()
    right[:, 0] = -1.0   # out(p) = frame(p - (1, 0)): the content moves one pixel to the right
    out = warp(frame, right)
    torch.testing.assert_close(out[..., 1:], frame[..., :-1])
    torch.testing.assert_close(out[..., 0], frame[..., 0])   # the edge is repeated
    half = zero.clone()
    half[:, 1] = 0.5     # half a pixel down the rows: the mean of two rows
    torch.testing.assert_close(warp(frame, half)[..., :-1, :], (frame[..., :-1, :] + frame[..., 1:, :]) / 2)


@pytest.mark.parametrize("velocity", [(1.0, 0.0), (-0.5, 0.75)])
def test_flow_extrapolation_continues_a_translation(velocity):
    clip = _moving_blob(10, velocity)
    context, truth = clip[:, :, :2], clip[:, :, 2:]
    flow = optical_flow(context[:, :, 0], context[:, :, 1])
    inner = (slice(None), slice(None), slice(8, 24), slice(8, 24))
    # backward flow: at each pixel of the last frame, where it was in the previous one
    torch.testing.assert_close(flow[inner[:2] + inner[2:]].mean((-1, -2)),
                               torch.tensor([[-velocity[0], -velocity[1]]]), atol=0.15, rtol=0)
    future = flow_extrapolate(context, 8)
    assert future.shape == truth.shape
    err_flow = (future - truth)[..., 8:24, 8:24].abs().mean()
    err_hold = (context[:, :, -1:] - truth)[..., 8:24, 8:24].abs().mean()
    assert err_flow < 0.25 * err_hold
    # a still scene stays still (Farneback finds at most a few hundredths of a pixel in it)
    still = clip[:, :, :1].expand(-1, -1, 2, -1, -1)
    drift = flow_extrapolate(still, 3) - still[:, :, :1]
    assert drift.abs().mean() < 2e-3 and drift.abs().max() < 0.05


def test_flow_extrapolation_of_one_channel_and_bad_input():
    clip = _moving_blob(4, (1.0, 0.0), channels=1)
    assert flow_extrapolate(clip[:, :, :2], 2).shape == (1, 1, 2, 32, 32)
    with pytest.raises(ValueError, match="needs context"):
        flow_extrapolate(clip[:, :, :1], 4)
    with pytest.raises(ValueError, match="unknown extrapolation 'spline'"):
        conditioning_clip(clip[:, :, :2], 4, "spline")
    assert torch.equal(conditioning_clip(clip[:, :, :2], 4, "hold"), hold_last(clip[:, :, :2], 4))


def test_encode_context_with_the_flow_extrapolation():
    future_ae = _ae(4, 1)
    clip = torch.rand(2, 1, 2, 8, 8) * 2 - 1
    with torch.no_grad():
        cond = encode_context(clip, "future", None, future_ae, motion=True, extrapolation="flow")
        torch.testing.assert_close(cond[:, :4], future_ae.encode(flow_extrapolate(clip, 4)))
        torch.testing.assert_close(cond[:, 4:], encode_context(clip, "future", None, future_ae, motion=True)[:, 4:])
    with pytest.raises(ValueError, match="needs context_encoder 'future'"):
        encode_context(clip, "context", _ae(2, 0), future_ae, extrapolation="flow")


def test_gaussian_blur_keeps_the_mean_of_a_smooth_frame_and_spreads_a_point():
    point = torch.zeros(1, 1, 15, 15)
    point[..., 7, 7] = 1.0
    blurred = gaussian_blur(point, 1.0)
    assert blurred.sum() == pytest.approx(1.0, abs=1e-5)   # far from the edges nothing is lost
    ys, xs = torch.meshgrid(torch.arange(15.0), torch.arange(15.0), indexing="ij")
    var_x = (blurred[0, 0] * (xs - 7) ** 2).sum()
    assert var_x == pytest.approx(1.0, abs=0.02)            # the variance of the kernel is sigma^2
    flat = torch.full((2, 3, 6, 6), 0.3)
    torch.testing.assert_close(gaussian_blur(flat, 2.5), flat)   # edges repeated: a flat frame stays flat
    assert torch.equal(gaussian_blur(point, 0.0), point)


def test_blurred_flow_extrapolation_blurs_frame_k_by_k_sigma():
    clip = _moving_blob(3, (1.0, 0.0))[:, :, :2]
    sharp, soft = flow_extrapolate(clip, 4), flow_extrapolate(clip, 4, blur=0.3)
    for k in range(4):
        torch.testing.assert_close(soft[:, :, k], gaussian_blur(sharp[:, :, k], 0.3 * (k + 1)))
    torch.testing.assert_close(conditioning_clip(clip, 4, "flow", 0.3), soft)
    with pytest.raises(ValueError, match="blur must be >= 0"):
        flow_extrapolate(clip, 4, blur=-1.0)
