"""The paper's OpenDV-YouTube experiment as two presets (supp 1.5): `paper_cityscapes256` (Cityscapes
re-trained at 256x256, 8 -> 8, P = 8, C' = 16) and `paper_opendv`, whose every training stage starts
from the matching Cityscapes unit (`init: checkpoint`); and the `extends` rule of presets."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from syncvp import presets
from syncvp.config import ParamsError, params_from_dict
from syncvp.config.init_from import InitFrom
from syncvp.config.loader import read_yaml
from syncvp.models.autoencoder import AutoencoderSpec
from syncvp.training.init_checkpoint import network_space
from tests.conftest import REPO


@functools.cache
def preset(name: str):
    return params_from_dict(presets.apply(read_yaml(REPO / "params.yaml"), presets.load(name)), name)


def test_cityscapes256_is_paper_cityscapes_at_256_with_its_own_patch_and_latent_channels():
    p, base = preset("paper_cityscapes256"), preset("paper_cityscapes")
    ds = p.datasets["cityscapes"]
    assert ds.resolution == (256, 256) and (ds.context_frames, ds.future_frames) == (8, 8)
    assert ds.context_frames + ds.rollout_frames <= ds.source.video_frames
    ae = p.autoencoder_for("cityscapes")
    assert (ae.patch_size, ae.latent_channels) == (8, 4 * 4) and ae.width == base.autoencoder.width == 192
    assert p.unet_for("cityscapes") == base.unet and p.joint == base.joint and p.train_joint == base.train_joint
    assert p.paths.models == Path("models-cityscapes256") and p.pipeline.train == ("cityscapes",)


def test_opendv_fine_tunes_every_stage_from_the_cityscapes256_units_of_the_same_architecture():
    p, src = preset("paper_opendv"), preset("paper_cityscapes256")
    ds, cs = p.datasets["opendv"], src.datasets["cityscapes"]
    assert set(p.datasets) == {"opendv"} and p.pipeline.train == ("opendv",)
    assert (ds.resolution, ds.context_frames, ds.future_frames, ds.rollout_frames) == ((256, 256), 8, 8, 24)
    assert ds.pseudo_depth.encoder == "vitl" and p.weights.depth_anything_vitl is not None
    expected = InitFrom(models=src.paths.models, dataset="cityscapes")
    for section in (p.train_autoencoder, p.train_single, p.train_joint):
        assert section.init == "checkpoint" and section.init_from == expected
    assert p.paths.models != src.paths.models  # the fine-tune never overwrites what it starts from
    # what `init: checkpoint` checks when the stages plan: the same autoencoder specs, unet, joint and diffusion
    for m in ds.modalities:
        for frames in (ds.context_frames, ds.future_frames):

            def spec(params, name, channels=3 if m == "rgb" else 1, frames=frames):
                return AutoencoderSpec.from_config(
                    params.autoencoder_for(name), channels=channels, frames=frames, resolution=(256, 256)
                )

            assert spec(p, "opendv") == spec(src, "cityscapes")
    assert p.unet_for("opendv") == src.unet_for("cityscapes") and p.joint == src.joint
    assert network_space(p.diffusion) == network_space(src.diffusion)
    assert (ds.context_frames, ds.future_frames) == (cs.context_frames, cs.future_frames)


def test_extends_merges_like_apply_and_refuses_a_cycle(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text("unet: {model_channels: 8, num_heads: 2}\ndatasets: {x: 1}\n")
    (tmp_path / "b.yaml").write_text("extends: a\nunet: {num_heads: 4}\ndatasets: {y: 2}\n")
    (tmp_path / "c.yaml").write_text("extends: d\n")
    (tmp_path / "d.yaml").write_text("extends: c\n")
    monkeypatch.setattr(presets, "HERE", tmp_path)
    assert presets.load("b") == {"unet": {"model_channels": 8, "num_heads": 4}, "datasets": {"y": 2}}
    with pytest.raises(ParamsError, match=r"c.yaml: extends 'd', which extends it again"):
        presets.load("d")
    with pytest.raises(ParamsError, match=r"unknown preset 'e'"):
        (tmp_path / "f.yaml").write_text("extends: e\n")
        presets.load("f")
