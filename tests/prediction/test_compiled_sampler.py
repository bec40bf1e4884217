"""`load_predictor(compile=True)` (params `run.compile` at evaluate / predict / complete): the
sampler's denoiser compiled gives the eager samples, and a compiler that fails leaves one warning
and the eager samples, never an error."""

from __future__ import annotations

import pytest
import torch

from syncvp.prediction import load_predictor
from syncvp.training import fastpath
from tests.prediction.conftest import SAMPLING, context_clips
from tests.training.test_compile_guard import Backend, Recording


def _samples(predictor) -> dict[str, torch.Tensor]:
    return predictor.rollout(context_clips(), 3, generator=torch.Generator().manual_seed(0))


def test_a_compiled_denoiser_samples_as_eager(joint_files, monkeypatch):
    """backend aot_eager (dynamo's graph capture without inductor's C++ build, minutes on 2 cores)."""
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", "aot_eager")
    eager = load_predictor(*joint_files, SAMPLING)
    warnings = []
    compiled = load_predictor(*joint_files, SAMPLING, compile=True, warn=warnings.append)
    assert eager.model._compiled_call_impl is None and compiled.model._compiled_call_impl is not None
    ref, out = _samples(eager), _samples(compiled)
    assert warnings == [] and compiled.model._compiled_call_impl is not None  # it compiled; no fallback
    for m in ref:
        torch.testing.assert_close(out[m], ref[m], atol=1e-5, rtol=0)
    for ae in (*compiled.context_autoencoders.values(), *compiled.future_autoencoders.values()):
        assert ae._compiled_call_impl is None  # the autoencoders stay eager


def test_the_samplers_denoiser_compiles_frozen(joint_files, monkeypatch):
    """The weights are fixed once loaded, so the denoiser compiles with inductor's freezing."""
    torch._dynamo.reset()
    backend = Recording()
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", backend)
    _samples(load_predictor(*joint_files, SAMPLING, compile=True))
    assert backend.freezing and all(backend.freezing)


def test_a_failing_compiler_samples_as_eager_with_one_warning(joint_files, monkeypatch):
    backend, warnings = Backend(), []
    monkeypatch.setattr(fastpath, "COMPILE_BACKEND", backend)
    eager = load_predictor(*joint_files, SAMPLING)
    compiled = load_predictor(*joint_files, SAMPLING, compile=True, channels_last=True, warn=warnings.append)
    ref, out = _samples(eager), _samples(compiled)
    assert backend.calls == 1 and len(warnings) == 1  # one attempt, then eager for every later step
    assert "torch.compile failed for JointUNet" in warnings[0] and "no kernels for you" in warnings[0]
    for m in ref:
        torch.testing.assert_close(out[m], ref[m], atol=1e-5, rtol=0)


@pytest.mark.gpu
def test_on_cuda_a_compiled_denoiser_replayed_from_cuda_graphs_samples_as_eager(joint_files, monkeypatch):
    """`run.compile` with `run.cuda_graphs`: the sampler's denoiser compiled by inductor (frozen)
    and captured in one CUDA graph per chunk gives the eager rollout (fp32, TF32 off, so only
    inductor's fusion and reordering differ) within 1e-3; it compiled (no fallback warning) and
    every chunk's graph was captured."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from syncvp.prediction import rollout
    from syncvp.training.fastpath import GraphedDenoiser

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    made = []

    class Spy(GraphedDenoiser):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            made.append(self)

    monkeypatch.setattr(rollout, "GraphedDenoiser", Spy)
    torch._dynamo.reset()
    warnings = []
    eager = load_predictor(*joint_files, SAMPLING, device="cuda")
    fast = load_predictor(*joint_files, SAMPLING, device="cuda", compile=True, cuda_graphs=True, warn=warnings.append)
    ref, out = _samples(eager), _samples(fast)
    assert warnings == [] and fast.model._compiled_call_impl is not None  # compiled, no fallback
    assert len(made) == 1 and made[0].graph is not None  # rollout of 3 frames: one chunk, captured
    for m in ref:
        torch.testing.assert_close(out[m], ref[m], atol=1e-3, rtol=0)
