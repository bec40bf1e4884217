"""Samplers on an analytic denoiser: DDIM over all steps with eta 1 is DDPM ancestral sampling,
DDIM with eta 0 is deterministic, both recover the data distribution, joint latents share noise."""

from __future__ import annotations

import math

import pytest
import torch

from syncvp.diffusion.process import eps_from_x0
from syncvp.diffusion.samplers import Sampler, ddim_timesteps, draw_noise
from syncvp.diffusion.schedule import NoiseSchedule

SCHEDULE = NoiseSchedule.named("linear_sqrt", 1000, start=0.0015, end=0.0195)


def gaussian_eps(mu: float, s: float):
    """The exact eps-prediction E[eps | x_t] when every element of x_0 is N(mu, s^2)."""

    def denoiser(x_t, t):
        abar = SCHEDULE.alphas_cumprod.to(x_t.device)[t].to(x_t.dtype).reshape(-1, *[1] * (x_t.ndim - 1))
        return (1 - abar).sqrt() * (x_t - abar.sqrt() * mu) / (abar * s * s + 1 - abar)

    return denoiser


def make(method="ddim", steps=1000, **kw) -> Sampler:
    return Sampler(schedule=SCHEDULE, prediction="eps", method=method, steps=steps, **kw)


def test_ddim_timesteps_follow_the_official_spacing():
    assert ddim_timesteps(1000, 100) == list(range(999, 8, -10)) + [-1]
    assert ddim_timesteps(1000, 1000) == list(range(999, -2, -1))
    assert ddim_timesteps(1000, 3) == [999, 665, 332, -1]
    with pytest.raises(ValueError, match="DDIM steps"):
        ddim_timesteps(1000, 1001)


@pytest.mark.parametrize("clip_x0, rederive_eps", [(False, False), (True, True)])
def test_ddim_eta1_over_all_steps_equals_ddpm(clip_x0, rederive_eps):
    """Same generator, same noise draws: the DDIM update with sigma^2 = beta~_t and the DDPM
    posterior mean coincide. mu = 0.8 makes the clamp active on some elements."""
    denoiser = gaussian_eps(mu=0.8, s=0.5)
    shape = (2, 3, 64)
    ddim = make("ddim", eta=1.0, clip_x0=clip_x0, rederive_eps=rederive_eps)
    ddpm = make("ddpm", clip_x0=clip_x0, rederive_eps=rederive_eps)
    a = ddim.sample(denoiser, shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64, return_x0=True)
    b = ddpm.sample(denoiser, shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(a.sample, b.sample, atol=1e-9, rtol=0)
    if clip_x0:
        assert max(float(x.max()) for x in a.x0_trajectory) == 1.0  # the clamp did act
    a32 = ddim.sample(denoiser, shape, generator=torch.Generator().manual_seed(0))
    b32 = ddpm.sample(denoiser, shape, generator=torch.Generator().manual_seed(0))
    assert a32.sample.dtype == torch.float32 and torch.allclose(a32.sample, b32.sample, atol=1e-4, rtol=0)


def test_official_ddim_keeps_the_network_eps_after_clamping():
    """Without rederive_eps the clamp changes x0^ but not eps^, so eta-1 DDIM departs from DDPM."""
    denoiser = gaussian_eps(mu=0.8, s=0.5)
    shape = (2, 3, 64)
    a = make("ddim", eta=1.0, clip_x0=True, rederive_eps=False).sample(
        denoiser, shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    b = make("ddpm", clip_x0=True).sample(
        denoiser, shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    assert not torch.allclose(a.sample, b.sample, atol=1e-6)


def test_one_ddim_step_matches_the_paper_update():
    """Two DDIM steps by hand: z <- sqrt(a') x0^ + c eps^ + sigma n, x0^ clamped, eps^ raw."""
    eps_out = torch.full((1, 1, 5), 3.0, dtype=torch.float64)
    sampler = make("ddim", steps=2, eta=0.7, clip_x0=True, rederive_eps=False)
    assert sampler.timesteps == [999, 499, -1]
    out = sampler.sample(
        lambda x, t: eps_out, (1, 1, 5), generator=torch.Generator().manual_seed(3), dtype=torch.float64
    )
    g = torch.Generator().manual_seed(3)
    z = torch.randn((1, 1, 5), generator=g, dtype=torch.float64)
    a, a_next = float(SCHEDULE.alphas_cumprod[999]), float(SCHEDULE.alphas_cumprod[499])
    x0 = ((z - math.sqrt(1 - a) * eps_out) / math.sqrt(a)).clamp(-1, 1)
    sigma = 0.7 * math.sqrt((1 - a / a_next) * (1 - a_next) / (1 - a))
    z = (
        math.sqrt(a_next) * x0
        + math.sqrt(1 - a_next - sigma**2) * eps_out
        + sigma * torch.randn((1, 1, 5), generator=g, dtype=torch.float64)
    )
    x0 = ((z - math.sqrt(1 - a_next) * eps_out) / math.sqrt(a_next)).clamp(-1, 1)
    assert torch.allclose(out.sample, x0, atol=1e-12)


def test_ddim_eta0_is_deterministic():
    denoiser = gaussian_eps(mu=0.1, s=0.4)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a = make("ddim", steps=25, eta=0.0).sample(denoiser, (2, 4, 16), generator=g1)
    b = make("ddim", steps=25, eta=0.0).sample(denoiser, (2, 4, 16), generator=g2)
    assert torch.equal(a.sample, b.sample)
    # only x_T was drawn: the generator is where drawing x_T alone leaves it
    ref = torch.Generator().manual_seed(7)
    torch.randn((2, 4, 16), generator=ref)
    assert torch.equal(g1.get_state(), ref.get_state())
    # x_0 is a deterministic function of x_T: another generator state changes nothing
    x_T = draw_noise((2, 4, 16), torch.Generator().manual_seed(7), same_noise=True)
    other = make("ddim", steps=25, eta=0.0).sample(
        denoiser, (2, 4, 16), x_T=x_T, generator=torch.Generator().manual_seed(99)
    )
    assert torch.equal(other.sample, a.sample)
    stochastic = make("ddim", steps=25, eta=0.5).sample(
        denoiser, (2, 4, 16), x_T=x_T, generator=torch.Generator().manual_seed(99)
    )
    assert not torch.equal(stochastic.sample, a.sample)


@pytest.mark.parametrize("method, eta", [("ddim", 0.0), ("ddim", 1.0), ("ddpm", 1.0)])
def test_samplers_recover_a_gaussian_data_distribution(method, eta):
    """With the exact denoiser and all 1000 steps the samples have the data's mean and (up to the
    fixed-variance / discretisation error of the samplers, < 3 %) its standard deviation."""
    mu, s = 0.2, 0.3
    out = make(method, steps=1000, eta=eta).sample(
        gaussian_eps(mu, s), (1, 1, 20000), generator=torch.Generator().manual_seed(11), dtype=torch.float64
    )
    x = out.sample.flatten()
    assert abs(float(x.mean()) - mu) < 0.01
    assert abs(float(x.std()) - s) < 0.01


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_fewer_ddim_steps_converge_towards_the_data_distribution(eta):
    errors = []
    for steps in (10, 100, 1000):
        out = make("ddim", steps=steps, eta=eta).sample(
            gaussian_eps(0.2, 0.3), (1, 1, 20000), generator=torch.Generator().manual_seed(11), dtype=torch.float64
        )
        assert abs(float(out.sample.mean()) - 0.2) < 0.01
        errors.append(abs(float(out.sample.std()) - 0.3))
    assert errors[0] > errors[1] > errors[2]


def test_joint_latents_share_noise_only_when_asked():
    """A denoiser acting alike on every modality gives identical samples iff all noise is shared."""
    base = gaussian_eps(mu=0.0, s=0.5)
    seen = []

    def joint(x, t):
        seen.append(sorted(x))
        return {m: base(v, t) for m, v in x.items()}

    shapes = {"a": (2, 4, 8), "b": (2, 4, 8)}
    shared = make("ddim", steps=10, eta=1.0, same_noise=True).sample(
        joint, shapes, generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(shared.sample["a"], shared.sample["b"])
    indep = make("ddim", steps=10, eta=1.0, same_noise=False).sample(
        joint, shapes, generator=torch.Generator().manual_seed(0)
    )
    assert not torch.allclose(indep.sample["a"], indep.sample["b"])
    assert seen[0] == ["a", "b"] and len(seen) == 20
    # independent initial noise, identical step noise would not make them equal either: the draws
    # are per modality in dict order
    noise = draw_noise(shapes, torch.Generator().manual_seed(0), same_noise=False)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(noise["a"], torch.randn((2, 4, 8), generator=g))
    assert torch.equal(noise["b"], torch.randn((2, 4, 8), generator=g))
    with pytest.raises(ValueError, match="one shape"):
        draw_noise({"a": (1, 2, 3), "b": (1, 2, 4)}, torch.Generator(), same_noise=True)


def test_outputs_trajectory_and_progress():
    events = []
    sampler = make("ddim", steps=5, eta=1.0)
    out = sampler.sample(
        gaussian_eps(0.0, 0.5),
        (3, 2, 6),
        generator=torch.Generator().manual_seed(0),
        return_x0=True,
        progress=events.append,
    )
    assert out.sample.shape == (3, 2, 6) and len(out.x0_trajectory) == 5
    assert torch.equal(out.x0_trajectory[-1], out.sample)  # the last step returns x0^
    assert [(e.done, e.total) for e in events] == [(i, 5) for i in range(1, 6)]


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_x0_and_v_prediction_samplers(prediction):
    """The exact x0- or v-network of Gaussian data also recovers it (eps comes from the clamped x0)."""
    mu, s = 0.2, 0.3
    eps_net = gaussian_eps(mu, s)

    def net(x_t, t):
        abar = SCHEDULE.alphas_cumprod[t].to(x_t.dtype).reshape(-1, 1, 1)
        eps = eps_net(x_t, t)
        x0 = (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
        return x0 if prediction == "x0" else abar.sqrt() * eps - (1 - abar).sqrt() * x0

    sampler = Sampler(schedule=SCHEDULE, prediction=prediction, method="ddim", steps=1000, eta=1.0)
    out = sampler.sample(net, (1, 1, 20000), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert abs(float(out.sample.mean()) - mu) < 0.01 and abs(float(out.sample.std()) - s) < 0.015
    if prediction == "x0":
        x_t = torch.randn(2, 1, 4, dtype=torch.float64)
        t = torch.tensor([10, 900])
        assert torch.allclose(eps_from_x0(SCHEDULE, x_t, t, net(x_t, t)), eps_net(x_t, t), atol=1e-8)


def test_invalid_settings_fail():
    with pytest.raises(ValueError, match="ddpm sampling runs all 1000"):
        make("ddpm", steps=100)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        make("ddim", steps=10, eta=-1.0)
    with pytest.raises(ValueError, match="too large"):
        make("ddim", steps=10, eta=3.0).sample(gaussian_eps(0, 1), (1, 1, 2), generator=torch.Generator())
    with pytest.raises(ValueError, match="the denoiser returned"):
        make("ddim", steps=2).sample(
            lambda x, t: {"a": x["a"]}, {"a": (1, 1, 2), "b": (1, 1, 2)}, generator=torch.Generator()
        )


@pytest.mark.gpu
def test_cuda_sampling_with_a_cpu_generator_matches_cpu():
    """Noise is drawn on the generator's device and moved, so the samples do not depend on
    where the model runs."""
    sampler = make("ddim", steps=20, eta=1.0)
    shapes = {"a": (2, 3, 16), "b": (2, 3, 16)}
    denoiser = gaussian_eps(0.2, 0.3)
    joint = lambda x, t: {m: denoiser(v, t) for m, v in x.items()}  # noqa: E731
    cpu = sampler.sample(joint, shapes, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gpu = sampler.sample(joint, shapes, generator=torch.Generator().manual_seed(0), device="cuda", dtype=torch.float64)
    for m in shapes:
        assert gpu.sample[m].device.type == "cuda"
        assert torch.allclose(gpu.sample[m].cpu(), cpu.sample[m], atol=1e-10)
