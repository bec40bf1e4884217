"""Known latents in the sampler (modality completion): RePaint replacement with the shared noise of
the unknown latent, fresh noise otherwise, resampling, and the errors."""

from __future__ import annotations

import math

import pytest
import torch

from syncvp.diffusion.samplers import Sampler
from syncvp.diffusion.schedule import NoiseSchedule

SCHEDULE = NoiseSchedule.named("linear_sqrt", 1000, start=0.0015, end=0.0195)
SHAPE = (2, 3, 5)


def recording_x0(value: float):
    """An x0-predicting denoiser that always predicts `value` for "u" and 0 for "k", and records
    every (t, x_t) it is called with."""
    calls = []

    def denoiser(x, t):
        calls.append((int(t[0]), {m: v.clone() for m, v in x.items()}))
        return {"u": torch.full_like(x["u"], value), "k": torch.zeros_like(x["k"])}

    return denoiser, calls


def sampler(steps=4, eta=0.0, same_noise=True) -> Sampler:
    return Sampler(
        schedule=SCHEDULE, prediction="x0", method="ddim", steps=steps, eta=eta, clip_x0=False, same_noise=same_noise
    )


def test_replacement_shares_the_unknown_latents_noise():
    x0_known = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    denoiser, calls = recording_x0(0.5)
    out = sampler().sample(
        denoiser, {"u": SHAPE, "k": SHAPE}, generator=torch.Generator().manual_seed(0), known={"k": x0_known}
    )
    assert torch.equal(out.sample["k"], x0_known)  # the known latent comes back as its x0
    assert torch.allclose(out.sample["u"], torch.full(SHAPE, 0.5))  # eta 0, last step: x0^
    assert [t for t, _ in calls] == [999, 749, 499, 249]  # one call per step
    # first call: x_T of u is pure noise n, the known one sqrt(a_T) x0 + n
    t, x = calls[0]
    assert torch.allclose(x["k"], math.sqrt(SCHEDULE.alpha_bar(t)) * x0_known + x["u"], atol=1e-6)
    # later calls: both latents carry the same noise part, x - sqrt(a_t) x0
    for t, x in calls[1:]:
        a = math.sqrt(SCHEDULE.alpha_bar(t))
        assert torch.allclose(x["k"] - a * x0_known, x["u"] - a * 0.5, atol=1e-5)


def test_replacement_with_independent_noise_draws_q_xt_given_x0():
    shape = (4000, 1, 5)
    x0_known = torch.full(shape, 0.8)
    denoiser, calls = recording_x0(0.0)
    sampler(steps=3, eta=1.0, same_noise=False).sample(
        denoiser, {"u": shape, "k": shape}, generator=torch.Generator().manual_seed(0), known={"k": x0_known}
    )
    for t, x in calls:
        a = SCHEDULE.alpha_bar(t)
        assert x["k"].mean().item() == pytest.approx(math.sqrt(a) * 0.8, abs=0.03)
        assert x["k"].std().item() == pytest.approx(math.sqrt(1 - a), rel=0.03)
        assert not torch.allclose(x["k"] - math.sqrt(a) * 0.8, x["u"])  # its own noise


def test_resampling_repeats_every_step():
    denoiser, calls = recording_x0(0.25)
    out = sampler(steps=3).sample(
        denoiser,
        {"u": SHAPE, "k": SHAPE},
        generator=torch.Generator().manual_seed(0),
        known={"k": torch.zeros(SHAPE)},
        resample=3,
    )
    assert [t for t, _ in calls] == [999] * 3 + [665] * 3 + [332] * 3
    assert torch.allclose(out.sample["u"], torch.full(SHAPE, 0.25))
    # between repeats the state goes back to t: q(x_t | x_t') keeps the noise part shared
    for t, x in calls[1:]:
        a = math.sqrt(SCHEDULE.alpha_bar(t))
        assert torch.allclose(x["k"], x["u"] - a * 0.25, atol=1e-5)
    # without known latents resampling also repeats the step (and still ends at x0^)
    plain, seen = recording_x0(0.25)
    out = sampler(steps=2).sample(
        plain, {"u": SHAPE, "k": SHAPE}, generator=torch.Generator().manual_seed(0), resample=2
    )
    assert [t for t, _ in seen] == [999, 999, 499, 499] and torch.allclose(out.sample["u"], torch.full(SHAPE, 0.25))


def test_no_known_latents_is_the_plain_sampler():
    denoiser, _ = recording_x0(0.1)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    s = sampler(steps=5, eta=1.0)
    a = s.sample(denoiser, {"u": SHAPE, "k": SHAPE}, generator=gen()).sample
    b = s.sample(denoiser, {"u": SHAPE, "k": SHAPE}, generator=gen(), known={}, resample=1).sample
    assert all(torch.equal(a[m], b[m]) for m in a)


def test_known_latent_errors():
    denoiser, _ = recording_x0(0.0)
    s, gen = sampler(), torch.Generator().manual_seed(0)
    shapes = {"u": SHAPE, "k": SHAPE}
    with pytest.raises(ValueError, match="nothing to sample"):
        s.sample(denoiser, shapes, generator=gen, known={"u": torch.zeros(SHAPE), "k": torch.zeros(SHAPE)})
    with pytest.raises(ValueError, match="not among the sampled"):
        s.sample(denoiser, shapes, generator=gen, known={"z": torch.zeros(SHAPE)})
    with pytest.raises(ValueError, match="has shape"):
        s.sample(denoiser, shapes, generator=gen, known={"k": torch.zeros(1, 3, 5)})
    with pytest.raises(ValueError, match="dict of latents"):
        s.sample(lambda x, t: x, SHAPE, generator=gen, known={"": torch.zeros(SHAPE)})
    with pytest.raises(ValueError, match="resample"):
        s.sample(denoiser, shapes, generator=gen, resample=0)
