"""The unet / diffusion / joint / sampling params sections: strict, validated, named errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from syncvp.config import ParamsError, load_params
from syncvp.config.loader import read_yaml
from syncvp.diffusion.factory import build_sampler, build_schedule

REPO = Path(__file__).resolve().parents[2]


def load_with(tmp_path, section, **changes):
    data = read_yaml(REPO / "params.yaml")
    data[section].update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_params(path)


@pytest.mark.parametrize(
    "section, changes, key, words",
    [
        ("unet", dict(norm_groups=5), "unet.norm_groups", "do not divide the level width 32"),
        ("unet", dict(num_heads=3), "unet.num_heads", "do not divide"),
        ("unet", dict(channel_mult=[]), "unet.channel_mult", "at least one"),
        ("unet", dict(attention_resolutions=[3]), "unet.attention_resolutions[0]", "power of 2"),
        ("unet", dict(condition_layout="padded"), "unet.condition_layout", "must be one of"),
        ("diffusion", dict(schedule="quadratic"), "diffusion.schedule", "must be one of"),
        ("diffusion", dict(beta_end=0.001), "diffusion.beta_end", "must be in [beta_start, 1)"),
        ("diffusion", dict(prediction="score"), "diffusion.prediction", "must be one of"),
        ("diffusion", dict(high_noise_share=1.5), "diffusion.high_noise_share", "must be in [0, 1]"),
        ("diffusion", dict(high_noise_from=1000), "diffusion.high_noise_from", "must be in [0, timesteps - 1 = 999]"),
        ("diffusion", dict(high_noise_from=-1), "diffusion.high_noise_from", "must be in [0, timesteps - 1 = 999]"),
        ("diffusion", dict(context_extrapolation="spline"), "diffusion.context_extrapolation", "must be one of"),
        (
            "diffusion",
            dict(
                context_encoder="context",
                context_motion=False,
                residual=False,
                extrapolate_modalities=None,
                extrapolation_blur=0.0,
            ),
            "diffusion.context_extrapolation",
            "'flow' needs context_encoder: future",
        ),
        ("sampling", dict(anchor="both"), "sampling.anchor", "must be one of"),
        ("sampling", dict(completion="inpaint"), "sampling.completion", "must be one of"),
        ("sampling", dict(completion_steps=0), "sampling.completion_steps", "must be >= 1 or null"),
        ("sampling", dict(completion_resample=0), "sampling.completion_resample", "must be >= 1"),
        ("sampling", dict(precision="fp16"), "sampling.precision", "must be one of"),
        ("sampling", dict(completion_steps=5000), "sampling.completion_steps", "exceeds diffusion.timesteps"),
        ("diffusion", dict(extrapolation_blur=-0.1), "diffusion.extrapolation_blur", "must be >= 0"),
        (
            "diffusion",
            dict(context_extrapolation="hold"),
            "diffusion.extrapolate_modalities",
            "must be null with context_extrapolation hold",
        ),
        (
            "diffusion",
            dict(extrapolate_modalities=["rgb", "semantic"]),
            "diffusion.extrapolate_modalities[1]",
            "'semantic' is not a modality of any dataset",
        ),
        (
            "diffusion",
            dict(context_extrapolation="hold", extrapolate_modalities=None),
            "diffusion.extrapolation_blur",
            "must be 0 with context_extrapolation hold",
        ),
        ("joint", dict(cross_attention="middle"), "joint.cross_attention", "must be one of"),
        ("joint", dict(deep_levels=0), "joint.deep_levels", "must be >= 1"),
        ("sampling", dict(eta=-1.0), "sampling.eta", "must be >= 0"),
        ("sampling", dict(guidance_weight=-0.5), "sampling.guidance_weight", "must be >= 0"),
        ("sampling", dict(steps=0), "sampling.steps", "must be >= 1"),
    ],
)
def test_bad_values_name_the_key(tmp_path, section, changes, key, words):
    with pytest.raises(ParamsError) as err:
        load_with(tmp_path, section, **changes)
    assert f": {key}:" in str(err.value) and words in str(err.value), str(err.value)


def test_missing_key_is_an_error(tmp_path):
    data = read_yaml(REPO / "params.yaml")
    del data["joint"]["same_noise"]
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match="joint.same_noise: is missing"):
        load_params(path)


def test_factories_cross_check_sections(repo_params, tmp_path):
    schedule = build_schedule(repo_params.diffusion)
    assert schedule.num_timesteps == repo_params.diffusion.timesteps
    sampler = build_sampler(repo_params.sampling, repo_params.diffusion, same_noise=repo_params.joint.same_noise)
    assert len(sampler.timesteps) == repo_params.sampling.steps + 1
    # the factory applies the same cross-section rule as the params load (tests/test_config.py)
    too_many = dataclasses.replace(repo_params.sampling, steps=2000)
    with pytest.raises(ValueError, match="sampling.steps: 2000 exceeds diffusion.timesteps 1000"):
        build_sampler(too_many, repo_params.diffusion, same_noise=True)
    ddpm = dataclasses.replace(repo_params.sampling, method="ddpm")
    with pytest.raises(ValueError, match="ddpm runs all diffusion.timesteps"):
        build_sampler(ddpm, repo_params.diffusion, same_noise=True)
