"""The context probe tells a model that uses its context from one that ignores it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from syncvp.diffusion.schedule import NoiseSchedule
from syncvp.diffusion.target import DiffusionTarget
from syncvp.training.context_probe import ContextProbe, context_summary, probe_column, probe_indices, probe_timesteps

SCHEDULE = NoiseSchedule.named("linear_sqrt", 100, start=0.0015, end=0.0195)


class Oracle(nn.Module):
    """x0-prediction that returns the context (exact when future == context), or zeros without it."""

    def forward(self, x, t, c):
        return c.clone()


class Blind(nn.Module):
    """x0-prediction that ignores the context."""

    def forward(self, x, t, c):
        return torch.zeros_like(x)


def _probe(model, **kw):
    g = torch.Generator().manual_seed(0)
    future = torch.rand(4, 2, 6, generator=g) * 1.6 - 0.8
    return ContextProbe(
        model,
        joint=False,
        context={"m": future.clone()},
        future={"m": future},
        schedule=SCHEDULE,
        prediction="x0",
        seed=0,
        **kw,
    )


def test_probe_sees_context_use():
    used = _probe(Oracle())()
    blind = _probe(Blind())()
    ts = probe_timesteps(100)
    assert ts == (10, 50, 89)
    for t in ts:
        assert used[f"x0_err_t{t}"] == pytest.approx(0.0, abs=1e-12)
        assert used[f"x0_err_t{t}_nocontext"] > 0.05
        assert blind[f"x0_err_t{t}"] == pytest.approx(blind[f"x0_err_t{t}_nocontext"])
    gains = context_summary([{"step": 1, **blind}], ts, ("m",), joint=False)
    assert gains == {f"context_gain_t{t}": pytest.approx(1.0) for t in ts}


def test_probe_errors_are_in_latent_units_through_the_target():
    """With a residual target the zero-output model predicts "nothing moves": latent error
    (future - context)^2 with context, future^2 without it."""
    g = torch.Generator().manual_seed(1)
    future = torch.rand(3, 2, 5, generator=g) * 0.5
    context = future + 0.1
    probe = ContextProbe(
        Blind(),
        joint=False,
        context={"m": context},
        future={"m": future},
        schedule=SCHEDULE,
        prediction="x0",
        seed=0,
        target=DiffusionTarget(residual=True, scales={"m": 0.5}),
    )
    out = probe()
    t = probe_timesteps(100)[0]
    assert out[f"x0_err_t{t}"] == pytest.approx(0.01, rel=1e-4)
    assert out[f"x0_err_t{t}_nocontext"] == pytest.approx(float((future**2).mean()), rel=1e-4)


def test_probe_does_not_touch_the_global_rng_and_restores_mode():
    model = Blind().train()
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    _probe(model)()
    assert torch.equal(torch.rand(1), before)
    assert model.training


def test_probe_indices_spread_over_the_windows():
    assert probe_indices(100, 4) == [0, 25, 50, 75]
    assert probe_indices(3, 8) == [0, 1, 2]


class CrossOracle(nn.Module):
    """Joint x0-prediction: "a" from its own context, "b" from a's context (b's own is ignored)."""

    def forward(self, x, t, c):
        return {"a": c["a"].clone(), "b": c["a"].clone()}


def test_joint_probe_sees_what_a_modality_takes_from_the_others():
    """b's future equals a's context: b's error is ~0 whenever a is observed (with every context,
    or only the others'), and large with no context; a takes nothing from b (others = none)."""
    g = torch.Generator().manual_seed(2)
    future = torch.rand(4, 2, 6, generator=g) * 1.6 - 0.8
    probe = ContextProbe(
        CrossOracle(),
        joint=True,
        context={"a": future.clone(), "b": torch.rand(4, 2, 6, generator=g)},
        future={"a": future, "b": future.clone()},
        schedule=SCHEDULE,
        prediction="x0",
        seed=0,
    )
    out = probe()
    ts = probe_timesteps(100)
    for t in ts:
        assert out[f"x0_err_t{t}_b"] == pytest.approx(0.0, abs=1e-12)
        assert out[f"x0_err_t{t}_others_b"] == pytest.approx(0.0, abs=1e-12)
        assert out[f"x0_err_t{t}_nocontext_b"] > 0.05
        assert out[f"x0_err_t{t}_others_a"] == pytest.approx(out[f"x0_err_t{t}_nocontext_a"])
    gains = context_summary([{"step": 1, **out}], ts, ("a", "b"), joint=True)
    for t in ts:
        assert gains[f"cross_gain_t{t}_a"] == pytest.approx(1.0)
        assert gains[f"cross_gain_t{t}_b"] == float("inf")
    assert probe_column(10, False, "b", others=True) == "x0_err_t10_others_b"
    with pytest.raises(ValueError, match="belongs to a modality"):
        probe_column(10, False, None, others=True)
