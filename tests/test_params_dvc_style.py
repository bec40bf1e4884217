"""params.yaml is written in the style DVC writes a params file it modifies (`dvc exp run -S`,
`dvc exp run --queue -S`: a ruamel.yaml round trip that turns flow lists into block lists and
`null` into an empty value), so an experiment's params.yaml differs from the committed one only
in the values it sets, comments included. Checked with DVC's own params-writing code."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _apply(tmp_path: Path, override: str) -> tuple[str, str]:
    from dvc.utils.hydra import apply_overrides

    path = tmp_path / "params.yaml"
    shutil.copyfile(REPO / "params.yaml", path)
    apply_overrides(path, [override])
    return (REPO / "params.yaml").read_text(), path.read_text()


def test_dvc_rewrites_params_yaml_byte_for_byte(tmp_path):
    seed = yaml.safe_load((REPO / "params.yaml").read_text())["run"]["seed"]
    before, after = _apply(tmp_path, f"run.seed={seed}")  # the same value: nothing may change
    diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), "params.yaml", "dvc -S"))
    assert before == after, f"params.yaml is not in DVC's style (write it as DVC does):\n{diff}"


def test_a_set_param_changes_only_its_line(tmp_path):
    before, after = _apply(tmp_path, "train_joint.init=scratch")
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(before.splitlines()) == len(after.splitlines())
    assert [(a.split("#")[0].strip(), b.split("#")[0].strip()) for a, b in changed] == [
        ("init: stage1", "init: scratch")
    ]
    assert yaml.safe_load(after)["train_joint"]["init"] == "scratch"
