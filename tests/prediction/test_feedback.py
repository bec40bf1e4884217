"""What a rollout feeds back: the paper's truncated uint8 frames or rounded ones, at the modality's
channels or the network's (gray_to_rgb), with the first chunk shared between the rollouts."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from syncvp.diffusion.factory import build_sampler
from syncvp.metrics.images import Quantisation, quantise, snap
from syncvp.models.autoencoder import TriplaneAutoencoder
from syncvp.prediction import Predictor
from syncvp.prediction.rollout import network_view
from tests.prediction.conftest import DIFFUSION, SAMPLING, autoencoders, context_clips, joint_model

PAPER = Quantisation("truncate", network_channels=True)
STANDARD = Quantisation("round")
# (1 + X) * 127.5 = 100.6 (float32: 100.59999847): the paper's cast gives 100, rounding 101
X = 100.6 / 127.5 - 1


def level(k: int) -> torch.Tensor:
    """Level k read back as a context frame, in float32 as SyncVP does (`c / 127.5 - 1` on uint8 c)."""
    return torch.tensor([k], dtype=torch.uint8) / 127.5 - 1


def predictor(quantize=("rgb",), gray_depth=False, future_frames=3):
    ctx, fut = autoencoders(2, future_frames)
    if gray_depth:  # depth through a 3-channel network, as the official depth checkpoints
        for aes in (ctx, fut):
            spec = aes["depth"].spec
            spec = dataclasses.replace(spec, config=dataclasses.replace(spec.config, gray_to_rgb=True))
            torch.manual_seed(7)
            aes["depth"] = TriplaneAutoencoder(spec).eval().requires_grad_(False)
    return Predictor(
        context_autoencoders=ctx,
        future_autoencoders=fut,
        model=joint_model(ctx, fut),
        sampler=build_sampler(SAMPLING, DIFFUSION, same_noise=True),
        quantize=frozenset(quantize),
    )


def spy_on_chunks(p: Predictor) -> list[dict[str, torch.Tensor]]:
    """Record the context every sampled chunk is conditioned on."""
    calls, original = [], p.sample_chunk

    def spy(ctx, present, generator, *args, **kwargs):
        calls.append({m: v.clone() for m, v in ctx.items()})
        return original(ctx, present, generator, *args, **kwargs)

    p.sample_chunk = spy
    return calls


def test_one_decoder_value_truncated_and_rounded():
    x = torch.tensor([X, -1.0, 1.0, 1.5])
    assert quantise(x, "truncate").tolist() == [100, 0, 255, 255]
    assert quantise(x, "round").tolist() == [101, 0, 255, 255]
    torch.testing.assert_close(snap(x, "truncate")[:1], level(100), rtol=0, atol=0)
    torch.testing.assert_close(snap(x, "round")[:1], level(101), rtol=0, atol=0)


def test_truncating_a_rounded_level_again_loses_one_level_for_63_of_256():
    """Why paper mode must truncate the raw decoder output: truncating k / 127.5 - 1 (float32) gives
    k - 1 for 63 levels (e.g. 1: (1 / 127.5 - 1 + 1) * 127.5 = 0.99999994), the error the old
    rounded-then-truncated scoring made."""
    levels = torch.arange(256, dtype=torch.float32)
    again = quantise(levels / 127.5 - 1, "truncate").long()
    assert again[1].item() == 0 and again[0].item() == 0 and again[255].item() == 255
    assert int((again != levels.long()).sum()) == 63
    assert torch.equal(quantise(levels / 127.5 - 1, "round").long(), levels.long())


def test_second_chunk_is_conditioned_on_the_truncated_frames(monkeypatch):
    """Stub decoder: every chunk decodes to X everywhere. The paper rollout's second chunk must see
    level 100 (truncated), the standard one level 101; unquantised depth sees X itself."""
    p = predictor(quantize=("rgb",))

    def stub_decode(sample, cond, context, present, network_channels=False):
        fut = p.future_autoencoders
        return {
            m: torch.full((sample[m].shape[0], fut[m].spec.channels, p.future_frames, 8, 8), X) for m in p.modalities
        }

    monkeypatch.setattr(p, "decode_chunk", stub_decode)
    calls = spy_on_chunks(p)
    runs = p.rollouts(context_clips(), 6, generator=torch.Generator().manual_seed(0), quantisations=[PAPER, STANDARD])
    assert len(calls) == 3  # the first chunk once, then one second chunk per rollout
    paper, standard = calls[1], calls[2]
    assert torch.equal(paper["rgb"], level(100).expand_as(paper["rgb"]))
    assert torch.equal(standard["rgb"], level(101).expand_as(standard["rgb"]))
    for ctx in (paper, standard):
        assert torch.equal(ctx["depth"], torch.full_like(ctx["depth"], X))
    # both return the raw decoder output; scoring quantises it with the mode's rounding
    for q in (PAPER, STANDARD):
        assert torch.equal(runs[q]["rgb"], torch.full_like(runs[q]["rgb"], X))
    assert set(quantise(runs[PAPER]["rgb"], "truncate").unique().tolist()) == {100}


def test_rollouts_share_the_first_chunk_and_equal_rollouts_run_alone():
    p = predictor(quantize=("rgb",))
    calls = spy_on_chunks(p)
    both = p.rollouts(context_clips(), 6, generator=torch.Generator().manual_seed(5), quantisations=[PAPER, STANDARD])
    assert len(calls) == 3
    alone = p.rollouts(context_clips(), 6, generator=torch.Generator().manual_seed(5), quantisations=[PAPER])
    standard = p.rollout(context_clips(), 6, generator=torch.Generator().manual_seed(5))
    for m in p.modalities:
        assert torch.equal(both[PAPER][m], alone[PAPER][m])
        assert torch.equal(both[PAPER][m][:, :, :, :3], both[STANDARD][m][:, :, :, :3])  # the shared first chunk
        assert not torch.equal(both[PAPER][m][:, :, :, 3:], both[STANDARD][m][:, :, :, 3:])  # other context
    torch.testing.assert_close(snap(both[STANDARD]["rgb"], "round"), standard["rgb"], rtol=0, atol=0)
    torch.testing.assert_close(both[STANDARD]["depth"], standard["depth"], rtol=0, atol=0)
    # one chunk, or nothing quantised: a single rollout serves every quantisation
    calls.clear()
    one = p.rollouts(context_clips(), 3, generator=torch.Generator().manual_seed(5), quantisations=[PAPER, STANDARD])
    assert len(calls) == 1 and one[PAPER] is one[STANDARD]
    plain = predictor(quantize=())
    runs = plain.rollouts(context_clips(), 6, generator=torch.Generator(), quantisations=[PAPER, STANDARD])
    assert runs[PAPER] is runs[STANDARD]


def test_gray_modality_fed_back_at_the_network_channels():
    p = predictor(quantize=("rgb", "depth"), gray_depth=True)
    ae = p.future_autoencoders["depth"]
    view = network_view(ae)
    assert view.spec.channels == 3 and ae.spec.channels == 1 and view.decoder is ae.decoder
    latent = ae.encode(context_clips(frames=3)["depth"])
    wide = view.decode(latent)
    assert wide.shape[1] == 3 and not torch.equal(wide[:, 0], wide[:, 1])
    torch.testing.assert_close(wide.mean(dim=1, keepdim=True), ae.decode(latent))  # decode averages the 3
    calls = spy_on_chunks(p)
    runs = p.rollouts(context_clips(), 6, generator=torch.Generator().manual_seed(1), quantisations=[PAPER, STANDARD])
    assert runs[PAPER]["depth"].shape == (2, 1, 3, 6, 8, 8) and runs[STANDARD]["depth"].shape == (2, 1, 1, 6, 8, 8)
    paper, standard = calls[1], calls[2]
    assert paper["depth"].shape[1] == 3 and standard["depth"].shape[1] == 1
    torch.testing.assert_close(paper["depth"], snap(runs[PAPER]["depth"][:, 0, :, 1:3], "truncate"), rtol=0, atol=0)
    torch.testing.assert_close(standard["depth"], snap(runs[STANDARD]["depth"][:, 0, :, 1:3], "round"), rtol=0, atol=0)
    # the first chunk is the same sample decoded both ways: its 3 channels average to the 1-channel one
    torch.testing.assert_close(runs[PAPER]["depth"][..., :3, :, :].mean(dim=2), runs[STANDARD]["depth"][:, :, 0, :3])


def test_rollouts_need_a_quantisation():
    with pytest.raises(ValueError, match="at least one Quantisation"):
        predictor().rollouts(context_clips(), 3, generator=torch.Generator(), quantisations=[])
    with pytest.raises(ValueError, match="rounding: expected truncate or round"):
        Quantisation("floor")
