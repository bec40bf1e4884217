"""The triplane UNet: shapes (odd, non-square), batched planes = per-plane loop, conditioning
layout, gradient flow, the paper's parameter count, and a tiny model overfitting one clip."""

from __future__ import annotations

import time

import pytest
import torch

from syncvp.diffusion.process import sample_timesteps, training_loss
from syncvp.diffusion.schedule import NoiseSchedule
from syncvp.models.triplane import TriplaneShape, align_condition
from syncvp.models.unet import TriplaneUNet, count_parameters
from syncvp.models.unet_blocks import PlaneLayout
from tests.models.tiny import CONTEXT, FUTURE, inputs, perturb, tiny_unet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("future", [FUTURE, TriplaneShape(3, 4, 4, 1), TriplaneShape(3, 5, 4, 8)])
def test_output_shape_and_zero_initial_output(future):
    net = tiny_unet(future, CONTEXT.with_channels(2) if future.height == 4 and future.width == 6 else
                    TriplaneShape(2, future.height, future.width, 2))
    x, t, c = inputs(future, net.context)
    with torch.no_grad():
        out = net(x, t, c)
    assert out.shape == x.shape
    assert float(out.abs().max()) == 0.0  # zero-initialised head: the UNet starts at eps^ = 0
    assert tuple(b.kind for b in net.blocks) == ("stem", "down", "downsample", "down", "middle", "up", "up", "up", "up")


def test_batched_planes_equal_the_per_plane_loop():
    future = TriplaneShape(3, 8, 8, 4)  # square: yt and xt are batched together
    net = perturb(tiny_unet(future, TriplaneShape(2, 8, 8, 2)), 1)
    x, t, c = inputs(future, net.context)
    batched = net(x, t, c)
    assert PlaneLayout.of(future).groups == ((0,), (1, 2))
    net.layout = PlaneLayout(future.plane_shapes, ((0,), (1,), (2,)))
    looped = net(x, t, c)
    assert torch.allclose(batched, looped, atol=1e-5)


def test_context_is_aligned_plane_by_plane_and_none_means_zeros():
    net = perturb(tiny_unet(), 2)
    x, t, c = inputs()
    planes = net.enter(x, c).to_latent()
    assert torch.equal(planes[:, :3], x)
    assert torch.equal(planes[:, 3:], align_condition(c, CONTEXT, FUTURE, "per_plane"))
    official = tiny_unet(condition_layout="official")
    assert torch.equal(official.enter(x, c).to_latent()[:, 3:], align_condition(c, CONTEXT, FUTURE, "official"))
    assert torch.equal(net(x, t, None), net(x, t, torch.zeros_like(c)))
    assert not torch.allclose(net(x, t, c), net(x, t, None))
    with pytest.raises(ValueError, match="context has shape"):
        net(x, t, c[..., :-1])
    with pytest.raises(ValueError, match="x_t has shape"):
        net(x[:, :2], t, c)
    with pytest.raises(ValueError, match="no context input"):
        tiny_unet(context=None)(x, t, c)


def test_every_parameter_receives_a_gradient():
    net = perturb(tiny_unet(), 3)
    x, t, c = inputs()
    net(x, t, c).square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().max()) > 0, name


def test_paper_configuration_parameter_count():
    """58.56 M, as the authors' stage-1 UNet (docs/method.md §8): 4 + 4 input channels, 256 channels,
    mult [1, 2], one residual block, attention everywhere, 8 heads."""
    with torch.device("meta"):
        net = TriplaneUNet(shape=TriplaneShape(4, 32, 32, 8), context=TriplaneShape(4, 32, 32, 2), model_channels=256,
                           channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4, 2, 1), num_heads=8,
                           norm_groups=32)
    assert count_parameters(net) == 58_561_284


def test_tiny_unet_overfits_one_clip():
    """Trained on one (latent, context) pair, the eps-loss over a fixed set of (t, eps) falls > 10x."""
    future, context = TriplaneShape(4, 4, 4, 4), TriplaneShape(4, 4, 4, 2)
    net = tiny_unet(future, context, model_channels=16, norm_groups=4)
    schedule = NoiseSchedule.named("linear_sqrt", 1000, start=0.0015, end=0.0195)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, 4, future.length, generator=g) * 2 - 1
    c = torch.rand(1, 4, context.length, generator=g) * 2 - 1
    t_eval = torch.linspace(0, 999, 64).long()
    eps_eval = torch.randn(64, 4, future.length, generator=torch.Generator().manual_seed(1))

    def loss(t, eps):
        n = len(t)
        return training_loss(lambda z, tt: net(z, tt, c.expand(n, -1, -1)), schedule, x0.expand(n, -1, -1),
                             t=t, noise=eps).mean()

    with torch.no_grad():
        before = float(loss(t_eval, eps_eval))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.0)
    start = time.monotonic()
    for _ in range(200):
        t = sample_timesteps(16, 1000, g)
        value = loss(t, torch.randn(16, 4, future.length, generator=g))
        opt.zero_grad()
        value.backward()
        opt.step()
    with torch.no_grad():
        after = float(loss(t_eval, eps_eval))
    assert before > 10 * after, (before, after, time.monotonic() - start)
