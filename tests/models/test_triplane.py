"""Triplane geometry: latent sizes from the formula, split/merge identity, condition alignment."""

from __future__ import annotations

import pytest
import torch

from syncvp.models.triplane import TriplaneShape, align_condition


@pytest.mark.parametrize("h, w, t, p, c, expected", [
    (128, 128, 8, 4, 4, 1536),    # Cityscapes future autoencoder: 4 x 1536
    (128, 128, 2, 4, 4, 1152),    # Cityscapes context autoencoder: 4 x 1152
    (256, 256, 8, 8, 16, 1536),   # OpenDV 256 px: 16 x 1536
    (288, 512, 4, 8, 16, None),   # agriculture, non-square
])
def test_length_matches_the_paper_formula(h, w, t, p, c, expected):
    shape = TriplaneShape.for_video(channels=c, height=h, width=w, frames=t, patch=p)
    formula = h * w // p ** 2 + t * (h + w) // p
    assert shape.length == formula
    if expected is not None:
        assert shape.length == expected


def test_split_merge_identity_and_layout():
    shape = TriplaneShape(channels=3, height=4, width=5, frames=2)
    z = torch.randn(2, 3, shape.length)
    xy, yt, xt = shape.split(z)
    assert xy.shape == (2, 3, 4, 5) and yt.shape == (2, 3, 2, 5) and xt.shape == (2, 3, 2, 4)
    assert torch.equal(shape.merge(xy, yt, xt), z)
    assert torch.equal(xy.flatten(-2), z[..., :20])          # [xy | yt | xt]
    assert torch.equal(yt.flatten(-2), z[..., 20:30])
    assert torch.equal(xt.flatten(-2), z[..., 30:])
    with pytest.raises(ValueError, match="does not match"):
        shape.split(torch.randn(1, 3, shape.length + 1))
    with pytest.raises(ValueError, match="xt plane"):
        shape.merge(xy, yt, xt[..., :1, :])
    with pytest.raises(ValueError, match="not divisible"):
        TriplaneShape.for_video(channels=4, height=30, width=32, frames=8, patch=4)


def test_condition_lands_on_matching_planes():
    ctx = TriplaneShape(channels=2, height=3, width=4, frames=2)
    fut = TriplaneShape(channels=2, height=3, width=4, frames=5)
    c = torch.randn(1, 2, ctx.length)
    out = align_condition(c, ctx, fut)
    cxy, cyt, cxt = ctx.split(c)
    oxy, oyt, oxt = fut.split(out)
    assert torch.equal(oxy, cxy)
    assert torch.equal(oyt[..., :2, :], cyt) and (oyt[..., 2:, :] == 0).all()
    assert torch.equal(oxt[..., :2, :], cxt) and (oxt[..., 2:, :] == 0).all()
    longer = align_condition(fut.merge(oxy, oyt, oxt), fut, ctx)
    assert torch.equal(ctx.split(longer)[1], oyt[..., -2:, :])


def test_official_layout_misplaces_xt():
    """The released code zero-pads at the end: context xt lands in target yt rows 2..3 (docs/method.md §7.1)."""
    ctx = TriplaneShape(channels=1, height=4, width=4, frames=2)
    fut = TriplaneShape(channels=1, height=4, width=4, frames=8)
    c = torch.randn(1, 1, ctx.length)
    out = align_condition(c, ctx, fut, mode="official")
    assert out.shape[-1] == fut.length
    _, oyt, oxt = fut.split(out)
    assert torch.equal(oyt[..., 2:4, :], ctx.split(c)[2]) and (oxt == 0).all()
