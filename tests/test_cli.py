"""`python -m syncvp check-params | fanout`."""

from __future__ import annotations

from pathlib import Path

import yaml

from syncvp.__main__ import main
from syncvp.config.loader import read_yaml

REPO = Path(__file__).resolve().parents[1]


def test_check_params_ok_and_bad(tmp_path, capsys):
    assert main(["check-params", str(REPO / "params.yaml")]) == 0
    assert "OK" in capsys.readouterr().out
    data = read_yaml(REPO / "params.yaml")
    data["run"]["seed"] = -1
    bad = tmp_path / "p.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["check-params", str(bad)]) == 2
    assert "run.seed: must be >= 0" in capsys.readouterr().err


def test_fanout_repairs_the_pipeline_section(tmp_path, capsys):
    data = read_yaml(REPO / "params.yaml")
    data["pipeline"]["train"] = ["synthetic"]  # now inconsistent: units missing
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["fanout", str(path)]) == 0
    section = yaml.safe_load(capsys.readouterr().out)["pipeline"]
    data["pipeline"] = section
    path.write_text(yaml.safe_dump(data))
    assert main(["check-params", str(path)]) == 0
    assert section["single"] == {f"synthetic-{m}": "synthetic" for m in data["datasets"]["synthetic"]["modalities"]}
