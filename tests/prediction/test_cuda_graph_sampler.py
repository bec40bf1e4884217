"""`Predictor(cuda_graphs=True)` (params `run.cuda_graphs` at evaluate / predict / complete): each
sampled chunk wraps the denoiser in a `GraphedDenoiser` whose example inputs have exactly the
shapes and dtypes the sampler then calls it with (so on CUDA every step replays the graph); on CPU
it is a pass-through with the plain samples; on CUDA (GPU test) the samples are the plain ones
within 1e-4 (fp32) / 2e-2 (bf16)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from syncvp.prediction import Predictor, rollout
from syncvp.training.fastpath import GraphedDenoiser
from tests.prediction.conftest import SAMPLING, context_clips, tiny_predictor


def predictor(joint: bool = True, device: str = "cpu", **options) -> Predictor:
    return tiny_predictor(joint, device, **options)


def _rollout(p: Predictor, joint: bool = True) -> dict[str, torch.Tensor]:
    context = context_clips()
    if not joint:
        context = {"depth": context["depth"]}
    return p.rollout(context, 4, generator=torch.Generator().manual_seed(0))


class Recording:
    """A `GraphedDenoiser` stand-in that checks every call against its examples, then calls `fn`."""

    made: list[Recording] = []
    failed = False

    def __init__(self, fn, example_z, example_t, *, warmup: int = 2, warn=None):
        self.fn, self.warn = fn, warn
        self.z = {k: (tuple(v.shape), v.dtype, v.device) for k, v in example_z.items()}
        self.t = (tuple(example_t.shape), example_t.dtype, example_t.device)
        self.calls = 0
        Recording.made.append(self)

    def __call__(self, z, t):
        got = {k: (tuple(v.shape), v.dtype, v.device) for k, v in z.items()}
        assert got == self.z, f"the sampler called with {got}, the graph was captured for {self.z}"
        assert (tuple(t.shape), t.dtype, t.device) == self.t, f"t {t.shape} {t.dtype} vs the example {self.t}"
        self.calls += 1
        return self.fn(z, t)


@pytest.mark.parametrize("joint", [True, False], ids=["joint", "stage-1"])
def test_on_cpu_cuda_graphs_is_a_pass_through(joint):
    ref = _rollout(predictor(joint), joint)
    out = _rollout(predictor(joint, cuda_graphs=True), joint)
    for m in ref:
        torch.testing.assert_close(out[m], ref[m], rtol=0, atol=0)


@pytest.mark.parametrize("known", [False, True], ids=["predict", "complete"])
def test_the_graph_is_captured_for_the_shapes_the_sampler_calls_with(monkeypatch, known):
    """`sample_chunk` builds one GraphedDenoiser per chunk whose examples match every call the
    sampler makes (z: every modality's [B, C', L] fp32 latent, known ones included; t: [B] long),
    so on CUDA no step falls back to a plain call."""
    Recording.made = []
    monkeypatch.setattr(rollout, "GraphedDenoiser", Recording)
    p = predictor(cuda_graphs=True, warn=print)
    context = context_clips()
    gen = torch.Generator().manual_seed(0)
    if known:
        sampler = dataclasses.replace(p.sampler, steps=2)
        true = torch.rand(2, 1, p.future_frames, 8, 8, generator=gen) * 2 - 1
        sample, _ = p.sample_chunk(
            context, frozenset(p.modalities), gen, known={"depth": true}, sampler=sampler, resample=2
        )
    else:
        sample, _ = p.sample_chunk(context, frozenset(p.modalities), gen)
    (made,) = Recording.made
    assert made.calls == (2 * 2 if known else SAMPLING.steps) and made.warn is print
    assert made.t == ((2,), torch.long, torch.device("cpu"))
    assert made.z == {
        m: ((2, ae.latent_shape.channels, ae.latent_shape.length), torch.float32, torch.device("cpu"))
        for m, ae in p.future_autoencoders.items()
    }
    assert {m: tuple(v.shape) for m, v in sample.items()} == {m: s[0] for m, s in made.z.items()}


def test_a_rollout_captures_once_per_chunk(monkeypatch):
    Recording.made = []
    monkeypatch.setattr(rollout, "GraphedDenoiser", Recording)
    p = predictor(cuda_graphs=True)
    _rollout(p)  # 4 frames in chunks of 3: two chunks
    assert [r.calls for r in Recording.made] == [SAMPLING.steps] * 2


def test_a_failed_capture_warns_once_and_later_chunks_run_plainly(monkeypatch):
    class Failing(Recording):
        def __init__(self, fn, example_z, example_t, *, warmup: int = 2, warn=None):
            super().__init__(fn, example_z, example_t, warmup=warmup, warn=warn)
            warn("CUDA graph capture failed (RuntimeError: no graphs today); calling the denoiser plainly")
            self.failed = True

    Recording.made, warnings = [], []
    monkeypatch.setattr(rollout, "GraphedDenoiser", Failing)
    ref = _rollout(predictor())
    out = _rollout(predictor(cuda_graphs=True, warn=warnings.append))  # two chunks
    assert len(Recording.made) == 1 and len(warnings) == 1 and "no graphs today" in warnings[0]
    for m in ref:
        torch.testing.assert_close(out[m], ref[m], rtol=0, atol=0)


def test_cuda_graphs_is_off_by_default():
    assert {f.name: f.default for f in dataclasses.fields(Predictor)}["cuda_graphs"] is False
    assert predictor().warn == rollout._logger.warning


@pytest.mark.gpu
@pytest.mark.parametrize(("precision", "atol"), [("fp32", 1e-4), ("bf16", 2e-2)])
def test_on_cuda_graph_replay_gives_the_plain_rollout(precision, atol):
    warnings = []
    plain = predictor(device="cuda", precision=precision)
    graphed = predictor(device="cuda", precision=precision, cuda_graphs=True, warn=warnings.append)
    made = []

    class Spy(GraphedDenoiser):
        def __init__(self, *args, **kw):
            super().__init__(*args, **kw)
            made.append(self)

    ref = _rollout(plain)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rollout, "GraphedDenoiser", Spy)
        out = _rollout(graphed)
    assert warnings == [] and made and all(g.graph is not None for g in made)  # captured, replayed
    for m in ref:
        torch.testing.assert_close(out[m], ref[m], rtol=0, atol=atol)
