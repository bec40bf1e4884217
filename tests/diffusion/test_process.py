"""Forward process, parameterisation conversions, posterior and the training loss."""

from __future__ import annotations

import math

import pytest
import torch

from syncvp.diffusion.process import (
    eps_from_v,
    q_posterior,
    q_sample,
    sample_timesteps,
    split_prediction,
    training_loss,
    training_target,
    v_from_x0_eps,
    x0_from_eps,
    x0_from_v,
)
from syncvp.diffusion.schedule import NoiseSchedule

SCHEDULE = NoiseSchedule.named("linear_sqrt", 1000, start=0.0015, end=0.0195)


def draws(seed=0, shape=(4, 3, 10)):
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 17, 500, 999])
    return x0, eps, t


def test_q_sample_formula():
    x0, eps, t = draws()
    x_t = q_sample(SCHEDULE, x0, t, eps)
    for i, ti in enumerate(t.tolist()):
        abar = float(SCHEDULE.alphas_cumprod[ti])
        assert torch.allclose(x_t[i], math.sqrt(abar) * x0[i] + math.sqrt(1 - abar) * eps[i], atol=1e-12)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_parameterisations_recover_x0_and_eps(prediction):
    x0, eps, t = draws()
    x_t = q_sample(SCHEDULE, x0, t, eps)
    target = training_target(SCHEDULE, prediction, x0, t, eps)
    got_x0, got_eps = split_prediction(SCHEDULE, prediction, target, x_t, t)
    assert torch.allclose(got_x0, x0, atol=1e-9) and torch.allclose(got_eps, eps, atol=1e-9)


def test_v_identities():
    x0, eps, t = draws(1)
    x_t = q_sample(SCHEDULE, x0, t, eps)
    v = v_from_x0_eps(SCHEDULE, x0, t, eps)
    abar = SCHEDULE.alphas_cumprod[t].reshape(-1, 1, 1)
    assert torch.allclose(v, abar.sqrt() * eps - (1 - abar).sqrt() * x0, atol=1e-12)
    assert torch.allclose(x0_from_v(SCHEDULE, x_t, t, v), x0, atol=1e-10)
    assert torch.allclose(eps_from_v(SCHEDULE, x_t, t, v), eps, atol=1e-10)
    assert torch.allclose(x0_from_eps(SCHEDULE, x_t, t, eps), x0, atol=1e-9)


def test_posterior_matches_the_gaussian_product():
    """Mean and variance of q(x_{t-1} | x_t, x_0) by completing the square, per timestep."""
    x0, eps, t = draws(2)
    t = torch.tensor([1, 2, 300, 999])
    x_t = q_sample(SCHEDULE, x0, t, eps)
    mean, var, logvar = q_posterior(SCHEDULE, x0, x_t, t)
    for i, ti in enumerate(t.tolist()):
        b = float(SCHEDULE.betas[ti])
        prev = float(SCHEDULE.alphas_cumprod[ti - 1])
        v = 1 / (1 / (1 - prev) + (1 - b) / b)
        m = v * (math.sqrt(prev) * x0[i] / (1 - prev) + math.sqrt(1 - b) * x_t[i] / b)
        assert torch.allclose(mean[i], m, atol=1e-10)
        assert float(var[i]) == pytest.approx(v, rel=1e-9)
        assert float(logvar[i]) == pytest.approx(math.log(v), rel=1e-9)
    assert var.shape == (4, 1, 1)


def test_posterior_at_t0_is_x0():
    x0, eps, _ = draws(3)
    t = torch.zeros(4, dtype=torch.long)
    mean, var, _ = q_posterior(SCHEDULE, x0, q_sample(SCHEDULE, x0, t, eps), t)
    assert torch.allclose(mean, x0, atol=1e-12) and float(var.abs().max()) == 0.0


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_training_loss_is_zero_for_the_exact_denoiser_and_mse_otherwise(prediction):
    x0, eps, t = draws(4)
    calls = []

    def exact(x_t, tt):
        calls.append((x_t, tt))
        return training_target(SCHEDULE, prediction, x0, tt, eps)

    loss = training_loss(exact, SCHEDULE, x0, t=t, noise=eps, prediction=prediction)
    assert loss.shape == (4,) and float(loss.abs().max()) == 0.0
    assert torch.equal(calls[0][0], q_sample(SCHEDULE, x0, t, eps)) and torch.equal(calls[0][1], t)
    zero = training_loss(lambda x_t, tt: torch.zeros_like(x_t), SCHEDULE, x0, t=t, noise=eps, prediction=prediction)
    target = training_target(SCHEDULE, prediction, x0, t, eps)
    assert torch.allclose(zero, (target**2).mean(dim=(1, 2)).float())


def test_sample_timesteps_uniform_and_seeded():
    t1 = sample_timesteps(20000, 1000, torch.Generator().manual_seed(5))
    t2 = sample_timesteps(20000, 1000, torch.Generator().manual_seed(5))
    assert torch.equal(t1, t2) and t1.dtype == torch.long
    assert int(t1.min()) >= 0 and int(t1.max()) <= 999
    assert abs(float(t1.float().mean()) - 499.5) < 5 * 288.7 / math.sqrt(20000)


def test_sample_timesteps_without_a_high_noise_share_is_the_plain_stream():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    t = sample_timesteps(64, 1000, g1, high_share=0.0, high_from=900)
    assert torch.equal(t, torch.randint(0, 1000, (64,), generator=g2))
    assert torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=g2))  # nothing else was drawn


def test_sample_timesteps_high_noise_share_composes_the_three_draws():
    g, ref = torch.Generator().manual_seed(11), torch.Generator().manual_seed(11)
    t = sample_timesteps(4096, 1000, g, high_share=0.25, high_from=900)
    plain = torch.randint(0, 1000, (4096,), generator=ref)
    high = torch.randint(900, 1000, (4096,), generator=ref)
    coin = torch.rand(4096, generator=ref)
    assert torch.equal(t, torch.where(coin < 0.25, high, plain))
    assert (t[coin < 0.25] >= 900).all()
    # P(t >= 900) = 0.25 + 0.75 * 0.1 = 0.325
    assert abs(float((t >= 900).float().mean()) - 0.325) < 5 * math.sqrt(0.325 * 0.675 / 4096)


def test_sample_timesteps_all_high_noise_and_bad_start():
    t = sample_timesteps(1000, 1000, torch.Generator().manual_seed(0), high_share=1.0, high_from=990)
    assert int(t.min()) >= 990 and int(t.max()) <= 999 and len(set(t.tolist())) == 10
    with pytest.raises(ValueError, match="high_from must be in"):
        sample_timesteps(4, 1000, torch.Generator(), high_share=0.5, high_from=1000)
