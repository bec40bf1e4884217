"""How context frames become the conditioning latent (`syncvp.models.context`)."""

from __future__ import annotations

import pytest
import torch

from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder
from syncvp.models.context import context_latent_shape, encode_context, hold_last


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
