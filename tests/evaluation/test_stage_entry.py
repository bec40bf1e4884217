"""The `evaluate` stage: its dvc.yaml template agrees with its SPEC; bad params fail before work."""

from __future__ import annotations

from pathlib import Path

import yaml

from stages._entry import SectionView
from stages.evaluate import SPEC

REPO = Path(__file__).resolve().parents[2]


def test_dvc_entry_matches_the_spec(repo_params):
    """(tests/test_params_contract.py checks the expanded entry; this checks the template.)"""
    entry = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]
    assert SPEC.fanout == "joint"  # dataset -> its stage-1 units: ${key} is the dataset, ${item} its units
    assert entry["foreach"] == f"${{pipeline.{SPEC.fanout}}}"
    assert entry["do"]["cmd"] == "python -m stages.evaluate ${key}"
    assert sorted(entry["do"]["params"]) == sorted(SPEC.sections("${key}"))
    for dep in entry["do"]["deps"]:
        assert "$" in dep or (REPO / dep).exists(), dep  # a file or a package folder
    deps = " ".join(entry["do"]["deps"])
    for unit in ("${item[0]}", "${item[1]}"):  # the stage-1 models and autoencoders the references read
        assert f"{unit}/diffusion.pt" in deps and f"{unit}-future/autoencoder.pt" in deps
    for ds in repo_params.pipeline.joint:
        args = SPEC.arguments(SectionView(repo_params, SPEC.sections(ds)), ds)
        assert args["weights"].i3d == repo_params.weights.i3d and args["evaluate"] is repo_params.evaluate
