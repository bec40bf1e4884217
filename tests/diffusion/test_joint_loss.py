"""The joint loss: shared noise is one eps and one t for every modality; terms per modality."""

from __future__ import annotations

import pytest
import torch

from syncvp.diffusion.joint import draw_joint_noise, joint_training_loss
from syncvp.diffusion.process import q_sample
from syncvp.diffusion.schedule import NoiseSchedule

SCHEDULE = NoiseSchedule.named("linear_sqrt", 1000, start=0.0015, end=0.0195)


def latents():
    g = torch.Generator().manual_seed(0)
    return {"rgb": torch.rand(3, 4, 10, generator=g) * 2 - 1, "depth": torch.rand(3, 4, 10, generator=g) * 2 - 1}


def test_shared_noise_uses_one_eps_and_one_t():
    x0 = latents()
    t, noise = draw_joint_noise(x0, 1000, torch.Generator().manual_seed(1), same_noise=True)
    assert noise["rgb"] is noise["depth"]
    seen = {}

    def recorder(x_t, tt):
        seen.update(x_t=x_t, t=tt)
        return {m: torch.zeros_like(v) for m, v in x_t.items()}

    joint_training_loss(recorder, SCHEDULE, x0, t=t, noise=noise)
    abar = SCHEDULE.alphas_cumprod[t].float().reshape(-1, 1, 1)
    # the noise actually inside each x_t is the same tensor
    eps = {m: (seen["x_t"][m] - abar.sqrt() * x0[m]) / (1 - abar).sqrt() for m in x0}
    assert torch.allclose(eps["rgb"], eps["depth"], atol=1e-4)
    assert torch.equal(seen["t"], t) and t.shape == (3,)
    # same generator, same draws: t first, then one eps
    g = torch.Generator().manual_seed(1)
    assert torch.equal(torch.randint(0, 1000, (3,), generator=g), t)
    assert torch.equal(torch.randn(3, 4, 10, generator=g), noise["rgb"])


def test_independent_noise_draws_one_eps_per_modality():
    x0 = latents()
    t, noise = draw_joint_noise(x0, 1000, torch.Generator().manual_seed(1), same_noise=False)
    assert not torch.allclose(noise["rgb"], noise["depth"])
    with pytest.raises(ValueError, match="one shape"):
        draw_joint_noise(
            {"a": torch.zeros(2, 4, 10), "b": torch.zeros(2, 3, 10)}, 1000, torch.Generator(), same_noise=True
        )


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_loss_terms_and_total(prediction):
    x0 = latents()
    t, noise = draw_joint_noise(x0, 1000, torch.Generator().manual_seed(2), same_noise=True)
    scale = {"rgb": 0.5, "depth": -0.25}
    out = joint_training_loss(
        lambda x_t, tt: {m: scale[m] * v for m, v in x_t.items()}, SCHEDULE, x0, t=t, noise=noise, prediction=prediction
    )
    for m in x0:
        x_t = q_sample(SCHEDULE, x0[m], t, noise[m])
        abar = SCHEDULE.alphas_cumprod[t].float().reshape(-1, 1, 1)
        target = noise[m] if prediction == "eps" else abar.sqrt() * noise[m] - (1 - abar).sqrt() * x0[m]
        assert torch.allclose(out.per_modality[m], ((scale[m] * x_t - target) ** 2).mean(), atol=1e-6)
    assert torch.allclose(out.total, out.per_modality["rgb"] + out.per_modality["depth"])
    with pytest.raises(ValueError, match="the denoiser returned"):
        joint_training_loss(lambda x_t, tt: {"rgb": x_t["rgb"]}, SCHEDULE, x0, t=t, noise=noise)
