"""Noise schedules: values at fixed timesteps recomputed from the formulas, table identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from syncvp.diffusion.schedule import NoiseSchedule, cosine_betas, extract, named_betas

T = 1000
START, END = 0.0015, 0.0195


def paper_beta(t: int) -> float:
    """The paper's schedule from its definition: betas linear in sqrt space."""
    root = math.sqrt(START) + t / (T - 1) * (math.sqrt(END) - math.sqrt(START))
    return root * root


@pytest.fixture(scope="module")
def paper() -> NoiseSchedule:
    return NoiseSchedule.named("linear_sqrt", T, start=START, end=END)


@pytest.mark.parametrize("t", [0, 1, 250, 499, 500, 998, 999])
def test_paper_schedule_at_fixed_t(paper, t):
    betas = [paper_beta(s) for s in range(t + 1)]
    alpha_bar = math.prod(1 - b for b in betas)
    alpha_bar_prev = math.prod(1 - b for b in betas[:-1])
    assert float(paper.betas[t]) == pytest.approx(betas[-1], rel=1e-12)
    assert float(paper.alphas_cumprod[t]) == pytest.approx(alpha_bar, rel=1e-10)
    assert float(paper.alphas_cumprod_prev[t]) == pytest.approx(alpha_bar_prev, rel=1e-10)
    assert float(paper.sqrt_one_minus_alphas_cumprod[t]) == pytest.approx(math.sqrt(1 - alpha_bar), rel=1e-10)
    assert float(paper.sqrt_recipm1_alphas_cumprod[t]) == pytest.approx(math.sqrt(1 / alpha_bar - 1), rel=1e-10)
    post = betas[-1] * (1 - alpha_bar_prev) / (1 - alpha_bar)
    assert float(paper.posterior_variance[t]) == pytest.approx(post, rel=1e-10, abs=1e-300)


def test_paper_schedule_endpoints_and_shape(paper):
    assert paper.num_timesteps == T and paper.betas.dtype == torch.float64
    assert float(paper.betas[0]) == pytest.approx(START, rel=1e-12)
    assert float(paper.betas[-1]) == pytest.approx(END, rel=1e-12)
    assert bool((paper.betas[1:] > paper.betas[:-1]).all())
    # sqrt-space: sqrt(beta) is an arithmetic progression
    roots = paper.betas.sqrt()
    assert torch.allclose(roots[1:] - roots[:-1], (roots[1] - roots[0]).expand(T - 1), rtol=1e-9)
    assert float(paper.posterior_variance[0]) == 0.0
    assert float(paper.posterior_log_variance_clipped[0]) == pytest.approx(math.log(float(paper.posterior_variance[1])))
    assert paper.alpha_bar(-1) == 1.0 and paper.alpha_bar(999) == float(paper.alphas_cumprod[999])


def test_linear_and_cosine_schedules():
    lin = named_betas("linear", 11, start=1e-4, end=0.02)
    assert lin[5] == pytest.approx(1e-4 + 0.5 * (0.02 - 1e-4), rel=1e-12)
    betas = cosine_betas(T)
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 500, 900):
        assert betas[t] == pytest.approx(1 - f((t + 1) / T) / f(t / T), rel=1e-10)
    assert betas.max() <= 0.999
    abar = np.cumprod(1 - betas)
    assert abar[499] == pytest.approx(f(0.5) / f(0.0), rel=1e-8)  # alpha_bar_t = f((t+1)/T) / f(0)
    with pytest.raises(ValueError, match="unknown beta schedule"):
        named_betas("quadratic", 10, start=0.1, end=0.2)


def test_posterior_coefficients_from_bayes(paper):
    """q(x_{t-1} | x_t, x_0) from q(x_{t-1} | x_0) q(x_t | x_{t-1}): precision adds up."""
    for t in (1, 10, 500, 999):
        b, prev = float(paper.betas[t]), float(paper.alphas_cumprod_prev[t])
        precision = 1 / (1 - prev) + (1 - b) / b
        var = 1 / precision
        assert float(paper.posterior_variance[t]) == pytest.approx(var, rel=1e-9)
        assert float(paper.posterior_mean_coef1[t]) == pytest.approx(var * math.sqrt(prev) / (1 - prev), rel=1e-9)
        assert float(paper.posterior_mean_coef2[t]) == pytest.approx(var * math.sqrt(1 - b) / b, rel=1e-9)


def test_extract_broadcasts_in_the_target_dtype(paper):
    like = torch.zeros(3, 4, 5, dtype=torch.float32)
    t = torch.tensor([0, 10, 999])
    out = extract(paper.betas, t, like)
    assert out.shape == (3, 1, 1) and out.dtype == torch.float32
    assert torch.equal(out.flatten(), paper.betas[t].float())
    with pytest.raises(ValueError, match="timesteps must have shape"):
        extract(paper.betas, torch.tensor([1, 2]), like)


def test_bad_betas_rejected():
    with pytest.raises(ValueError, match="values in \\(0, 1\\)"):
        NoiseSchedule.from_betas(np.array([0.1, 1.0]))
