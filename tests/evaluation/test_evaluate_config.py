"""The `evaluate` params section: strict validation naming the key and the value."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from syncvp.config import ParamsError, params_from_dict
from syncvp.config.loader import read_yaml

REPO = Path(__file__).resolve().parents[2]


def test_conditions_expand_and_reductions(repo_params):
    ev = dataclasses.replace(repo_params.evaluate, conditions=("all", "each"), reduce="both")
    assert ev.expand_conditions(("rgb", "depth")) == ("all", "rgb", "depth")
    ev = dataclasses.replace(ev, conditions=("depth", "each"), reduce="best")
    assert ev.expand_conditions(("rgb", "depth")) == ("depth", "rgb")
    assert ev.trajectory_reductions == ("best",)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"metrics": ["ssim", "fid"]}, "evaluate.metrics[1]: must be one of"),
        ({"noise": {"modality": None, "sigmas": [2.5]}}, "evaluate.noise.sigmas: noise.modality is null"),
        ({"noise": {"modality": "depth", "sigmas": [-1.0]}}, "evaluate.noise.sigmas[0]: must be >= 0"),
        ({"model": "single", "conditions": ["all", "depth"]}, "evaluate.conditions: a stage-1 (single) evaluation"),
        ({"reduce": "median"}, "evaluate.reduce: must be one of"),
        ({"protocols": ["paper", "paper"]}, "evaluate.protocols"),
        ({"split": "holdout"}, "evaluate.split: must be one of"),
        ({"videos": 0}, "evaluate.videos: must be >= 1 or null"),
        (
            {"baselines": ["autoencoder", "copy_last"]},
            "evaluate.baselines[1]: must be one of ['single', 'flow', 'autoencoder']",
        ),
        ({"baselines": ["single", "single"]}, "evaluate.baselines: has duplicates"),
        (
            {"model": "single", "conditions": ["all"], "baselines": ["single"]},
            "evaluate.baselines: the single baseline compares a joint model",
        ),
        ({"metrics": ["ssim", "alignment", "aligned"]}, "evaluate.metrics[2]: must be one of"),
    ],
)
def test_bad_values_name_the_key(change, message):
    data = read_yaml(REPO / "params.yaml")
    data["evaluate"].update(change)
    with pytest.raises(ParamsError, match=re.escape(message)):
        params_from_dict(data)


def test_default_references_and_alignment(repo_params):
    assert (
        repo_params.evaluate.baselines == ("single", "flow", "autoencoder")
        and "alignment" in repo_params.evaluate.metrics
    )
    data = read_yaml(REPO / "params.yaml")
    data["evaluate"].update(model="single", conditions=["all"], baselines=["autoencoder"])
    assert params_from_dict(data).evaluate.baselines == ("autoencoder",)
    data["evaluate"]["baselines"] = []  # copy_last only
    assert params_from_dict(data).evaluate.baselines == ()


def test_missing_key_is_an_error():
    data = read_yaml(REPO / "params.yaml")
    del data["evaluate"]["seed"]
    with pytest.raises(ParamsError, match="evaluate.seed"):
        params_from_dict(data)
    data = read_yaml(REPO / "params.yaml")
    del data["evaluate"]["baselines"]
    with pytest.raises(ParamsError, match="evaluate.baselines"):
        params_from_dict(data)
