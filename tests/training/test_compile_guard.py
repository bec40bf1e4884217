"""`run.compile` never ends a run: a compiled module whose compilation fails runs eager from then on
with one warning; an error eager raises too still propagates; a tiny UNet really compiled on CPU
matches eager; a frozen module (the sampler's denoiser) compiles with inductor's freezing, and only
it; and a diffusion training with a failing compiler trains exactly as eager does."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from syncvp.training import diffusion_train, fastpath
from syncvp.training.fastpath import guard_compile
from tests.models.tiny import inputs, perturb, tiny_unet
from tests.training.diffusion_setup import setup
from tests.training.test_diffusion_training import plan_single

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Backend:
    """A torch.compile backend that fails (and counts how often it was asked)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, gm, example_inputs):
        self.calls += 1
        raise RuntimeError("no kernels for you\nsecond line")


class TinyNet(nn.Module):
    """Linear, GELU, Linear. A module of its own rather than nn.Sequential: under torch 2.11 (the
    lent GPU machine's) `Module.compile()` traces from the module's `forward`, and dynamo skips
    a forward defined inside torch, so a Sequential would never reach the backend there."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2)])

    def __getitem__(self, i: int) -> nn.Module:
        return self.layers[i]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return TinyNet()


def test_a_failing_compiler_falls_back_to_eager_once_with_one_warning():
    eager, model = tiny(), tiny()
    backend, warnings = Backend(), []
    guard_compile(model, backend=backend, warn=warnings.append)
    x = torch.randn(3, 4)
    out = model(x)
    assert torch.equal(out, eager(x)) and backend.calls == 1
    assert len(warnings) == 1 and "torch.compile failed for TinyNet" in warnings[0]
    assert "no kernels for you" in warnings[0] and "second line" not in warnings[0]
    out.sum().backward()  # gradients flow through the eager fallback
    assert model[0].weight.grad is not None
    model(torch.randn(5, 4))  # later calls: eager, no new attempt, no new warning
    assert backend.calls == 1 and len(warnings) == 1
    assert list(model.state_dict()) == list(eager.state_dict())  # in place: checkpoints keep their keys


def test_the_fallback_logs_the_full_traceback_at_debug_level(caplog):
    """The warning names the innermost reason; the traceback (which compiler pass failed) goes to
    the module's logger at debug level, for the GPU suite's log."""
    model = tiny()
    guard_compile(model, backend=Backend(), warn=lambda m: None)
    with caplog.at_level("DEBUG", logger="syncvp.training.fastpath"):
        model(torch.randn(3, 4))
    (record,) = [r for r in caplog.records if r.name == "syncvp.training.fastpath"]
    assert record.levelname == "DEBUG" and "full traceback" in record.getMessage()
    assert record.exc_info and "no kernels for you" in str(record.exc_info[1])
    assert "Backend.__call__" in caplog.text or "in __call__" in caplog.text


def test_an_error_eager_raises_too_propagates():
    model, warnings = tiny(), []
    guard_compile(model, backend=Backend(), warn=warnings.append)
    with pytest.raises(RuntimeError, match="mat1 and mat2 shapes cannot be multiplied"):
        model(torch.randn(3, 5))
    assert warnings == []


def test_a_tiny_unet_compiled_on_cpu_matches_eager():
    """backend aot_eager: dynamo's graph capture and AOT autograd's forward and backward graphs,
    without inductor's C++ build (minutes on 2 cores); the guard wraps either the same way."""
    eager = perturb(tiny_unet(), 1)
    model = perturb(tiny_unet(), 1)
    warnings = []
    guard_compile(model, backend="aot_eager", warn=warnings.append)
    x, t, c = inputs()
    ref, out = eager(x, t, c), model(x, t, c)
    assert warnings == [] and model._compiled_call_impl is not None  # it compiled; no fallback
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    ref.square().mean().backward()
    out.square().mean().backward()
    for a, b in zip(eager.parameters(), model.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4)


class Recording:
    """A torch.compile backend that runs the captured graph as it is and records inductor's
    `freezing` setting at each compilation."""

    def __init__(self):
        self.freezing = []

    def __call__(self, gm, example_inputs):
        from torch._inductor import config

        self.freezing.append(config.freezing)
        return gm.forward


def test_only_a_frozen_module_compiles_with_inductors_freezing():
    from torch._inductor import config

    torch._dynamo.reset()
    frozen, plain = Recording(), Recording()
    a, b = guard_compile(tiny(), backend=frozen, frozen=True), guard_compile(tiny(), backend=plain)
    x = torch.randn(3, 4)
    with torch.no_grad():
        a(x), b(x)
    assert frozen.freezing == [True] and plain.freezing == [False]
    assert config.freezing is False  # patched around the frozen module's calls only


def test_inductor_folds_a_frozen_modules_weights_into_its_no_grad_graph():
    """Real inductor on CPU (a two-layer MLP compiles in seconds): the frozen module gives eager's
    output, and a later change of its weights is not seen by its no-grad calls (the weights are
    constants of the compiled graph), while the same change reaches a module compiled unfrozen."""
    torch._dynamo.reset()
    x, outs = torch.randn(3, 4), {}
    for frozen in (True, False):
        eager, model, warnings = tiny(), tiny(), []
        guard_compile(model, backend="inductor", frozen=frozen, warn=warnings.append)
        with torch.no_grad():
            before = model(x)
            torch.testing.assert_close(before, eager(x), atol=1e-6, rtol=1e-5)
            model[0].weight.mul_(2)
            eager[0].weight.mul_(2)
            outs[frozen] = before, model(x), eager(x)
        assert warnings == [] and model._compiled_call_impl is not None  # compiled, no fallback
    before, after, changed = outs[True]
    assert torch.equal(after, before) and not torch.allclose(changed, before)
    _, after, changed = outs[False]
    torch.testing.assert_close(after, changed, atol=1e-6, rtol=1e-5)


def test_a_training_with_a_failing_compiler_trains_as_eager(tiny_params, monkeypatch):
    p = setup(tiny_params)
    eager = plan_single(dataclasses.replace(p, train_single=dataclasses.replace(p.train_single, steps=2)))
    compiled = dataclasses.replace(eager, compile=True)
    assert compiled.fingerprint == eager.fingerprint  # speed only: a compiled run resumes an eager one
    backend, warnings = Backend(), []
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", backend)
    first = diffusion_train.train(compiled, warn=warnings.append)
    assert backend.calls >= 1 and sum("torch.compile failed for TriplaneUNet" in w for w in warnings) == 1
    second = diffusion_train.train(eager)  # the first run finished: this one trains from scratch
    assert first["loss_final"] == pytest.approx(second["loss_final"], rel=1e-6)


def test_a_compiled_training_never_freezes_its_weights(tiny_params, monkeypatch):
    """The trained network's weights change at every step: its compilations (no-grad ones
    included) never run with inductor's freezing."""
    torch._dynamo.reset()
    p = setup(tiny_params)
    job = dataclasses.replace(
        plan_single(dataclasses.replace(p, train_single=dataclasses.replace(p.train_single, steps=2))), compile=True
    )
    backend = Recording()
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", backend)
    diffusion_train.train(job)
    assert backend.freezing and not any(backend.freezing)


# ------------------------------------------------------------------------------------------------
# Activation checkpointing: the same gradients, training only


def _grads(model, *args) -> list[torch.Tensor]:
    out = model(*args)
    loss = sum(v.square().mean() for v in out.values()) if isinstance(out, dict) else out.square().mean()
    loss.backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_activation_checkpointing_gives_the_same_gradients_and_runs_only_in_training(monkeypatch):
    from syncvp.models import unet_blocks
    from syncvp.models.unet_blocks import set_activation_checkpointing
    from tests.models.test_joint_unet import branches, joint, joint_inputs

    def tiny_joint():
        return joint(branches(2), "all")

    calls = []
    real = unet_blocks.checkpoint
    monkeypatch.setattr(unet_blocks, "checkpoint", lambda *a, **k: calls.append(1) or real(*a, **k))
    for build, args in ((lambda: perturb(tiny_unet(), 2), inputs()), (tiny_joint, joint_inputs(("rgb", "depth")))):
        plain, saving = build(), set_activation_checkpointing(build(), True)
        calls.clear()
        ref, got = _grads(plain, *args), _grads(saving, *args)
        assert calls and len(ref) == len(got)  # every block ran under checkpoint
        for a, b in zip(ref, got):
            torch.testing.assert_close(b, a, atol=0, rtol=0)
        calls.clear()
        with torch.no_grad():
            saving(*args)
        saving.eval()
        saving(*args)
        assert calls == []  # no-grad and eval calls run plain


def test_run_flags_reach_the_diffusion_jobs_and_leave_the_fingerprint(tiny_params):
    p = setup(tiny_params)
    run = dataclasses.replace(p.run, activation_checkpointing=True, compile=True, channels_last=True)
    plain, flagged = plan_single(p), plan_single(dataclasses.replace(p, run=run))
    assert (flagged.activation_checkpointing, flagged.compile, flagged.channels_last) == (True, True, True)
    assert flagged.fingerprint == plain.fingerprint  # speed and memory only: a run resumes across them
