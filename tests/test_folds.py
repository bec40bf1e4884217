"""`python -m syncvp folds <dataset>`: one `dvc exp run --queue` per held-out sequence of a
leave-one-out image-sequence dataset, on a tiny folder tree; the printed overrides, applied the
way DVC applies `-S`, give params that load and hold that sequence out."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from syncvp import presets
from syncvp.__main__ import main
from syncvp.config import load_params
from syncvp.config.loader import read_yaml
from syncvp.data.sources import image_sequence

REPO = Path(__file__).resolve().parents[1]
PLANTS = ("001", "plant 2", "plant_10", "row_b/plant_3")  # a numeric-like id, a space, natural order, nesting


def write_plants(root: Path, plants=PLANTS, dates: int = 4) -> None:
    for p, plant in enumerate(plants):
        for d in range(dates):
            for folder, shape in (("rgb", (8, 8, 3)), ("depth", (8, 8))):
                path = root / folder / plant / f"2021-06-{d + 1:02d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                assert cv2.imwrite(str(path), np.full(shape, 10 * p + d, np.uint8))


def agri_entry(folder: Path, **source) -> dict:
    gray = {"channels": 1, "resize": "area", "value_range": None, "classes": None}
    return {
        "source": {
            "kind": "image_sequence",
            "root": str(folder),
            "modalities": {
                "rgb": {"channels": 3, "resize": "area", "value_range": None, "classes": None},
                "depth": gray,
            },
            "rgb_modality": "rgb",
            "frame_pattern": "(?P<frame>.+)",
            "frame_step": 1,
            "video_frames": 4,
            "stride": 1,
            "splits": "leave_one_out",
            "held_out": ["001"],
            "val": ["plant_10"],
            **source,
        },
        "modalities": ["rgb", "depth"],
        "resolution": [8, 8],
        "context_frames": 3,
        "future_frames": 1,
        "rollout_frames": 1,
        "pseudo_depth": None,
        "models": None,
    }


def params_file(tmp_path: Path, **source) -> Path:
    data = read_yaml(REPO / "params.yaml")
    data["datasets"]["agri"] = agri_entry(tmp_path / "plants", **source)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(presets.apply(data, {}), sort_keys=False))
    return path


@pytest.fixture
def plants(tmp_path):
    write_plants(tmp_path / "plants")
    return tmp_path


def test_folds_print_one_queued_experiment_per_sequence(plants, capsys):
    path = params_file(plants)
    assert main(["folds", "agri", "--params", str(path)]) == 0
    out = capsys.readouterr()
    assert "agri: 4 leave-one-out folds" in out.err
    lines = out.out.splitlines()
    key = f"{path}:datasets.agri.source"
    assert lines == [
        f"dvc exp run --queue --name agri-loo-001 -S '{key}.held_out=[\"001\"]'",
        f"dvc exp run --queue --name agri-loo-plant-2 -S '{key}.held_out=[\"plant 2\"]'",
        # plant_10 is the val sequence: its fold validates on the first training sequence instead
        f"dvc exp run --queue --name agri-loo-plant_10 -S '{key}.held_out=[\"plant_10\"]' -S '{key}.val=[\"001\"]'",
        f"dvc exp run --queue --name agri-loo-row_b-plant_3 -S '{key}.held_out=[\"row_b/plant_3\"]'",
        "dvc exp run --run-all",
    ]


def test_each_fold_applied_as_dvc_does_holds_its_sequence_out(plants, capsys):
    """`-S` overrides go through DVC's own Hydra parser: ids stay strings ('001' is not 1) and the
    resulting params load strictly and put exactly that sequence in the test split."""
    from dvc.utils.hydra import apply_overrides

    path = params_file(plants)
    assert main(["folds", "agri", "--params", str(path)]) == 0
    commands = [shlex.split(line) for line in capsys.readouterr().out.splitlines()[:-1]]
    tested = []
    for i, args in enumerate(commands):
        fold = plants / f"fold{i}.yaml"
        fold.write_text(path.read_text())
        overrides = [a.split(":", 1)[1] for a in args[args.index("-S") :] if a != "-S"]
        apply_overrides(fold, overrides)
        source = load_params(fold).datasets["agri"].source
        videos = image_sequence.videos("agri", source, source.root)
        test = {v.video_id for v in videos if v.split == "test"}
        val = {v.video_id for v in videos if v.split == "val"}
        assert len(source.held_out) == 1 and len(test) == 1 and len(val) == 1 and not test & val
        tested.append(source.held_out[0])
    assert tested == list(PLANTS)


def test_default_params_file_has_no_file_prefix(plants, monkeypatch, capsys):
    path = params_file(plants)
    monkeypatch.chdir(plants)
    assert main(["folds", "agri"]) == 0 and path.name == "params.yaml"
    assert capsys.readouterr().out.splitlines()[0] == (
        "dvc exp run --queue --name agri-loo-001 -S 'datasets.agri.source.held_out=[\"001\"]'"
    )


@pytest.mark.parametrize(
    "dataset, source, words",
    [
        ("nope", {}, "dataset 'nope' is not in `datasets` (known: "),
        ("synthetic", {}, "folds need an image_sequence source, got kind 'synthetic_video'"),
        ("agri", dict(splits="files", held_out=None, val=None), "source.splits is 'files'; set it to leave_one_out"),
        ("agri", dict(root="/nonexistent/plants"), "source.root /nonexistent/plants does not exist"),
        ("agri", dict(val=["plant_9"]), "source.val[0] 'plant_9' is not a sequence found under"),
        ("agri", dict(held_out=["row_b/plant_3"], val=["001", "plant 2", "plant_10"]), "leaves no sequence for train"),
    ],
)
def test_folds_errors(plants, capsys, dataset, source, words):
    path = params_file(plants, **source)
    assert main(["folds", dataset, "--params", str(path)]) == 2
    out = capsys.readouterr()
    assert words in out.err and out.out == "", out.err


def test_a_new_fold_keeps_the_pseudo_depth_label_key(tmp_path):
    """The pseudo-depth labels of a leave-one-out dataset are keyed without its split assignment,
    so the `pseudo_depth` stage of every fold finds them up to date instead of relabelling."""
    from pipelines.pseudo_depth import label_settings
    from syncvp.config import DatasetConfig
    from syncvp.config.loader import build

    def settings(**source):
        entry = agri_entry(tmp_path, **source)
        entry.update(modalities=["rgb", "depth"], pseudo_depth=PSEUDO)
        entry["source"]["modalities"].pop("depth")
        return label_settings(build(DatasetConfig, entry, "datasets.agri", "<test>"), "md5")

    base = settings()
    assert settings(held_out=["plant_10"], val=["001"]) == base
    assert settings(splits="files", held_out=None, val=None) == base
    assert settings(frame_pattern=r"(?P<frame>\d+)") != base
    assert base["source"]["root"] == str(tmp_path)


PSEUDO = {
    "encoder": "vitl",
    "input_size": 518,
    "batch_size": 4,
    "normalization": "per_frame",
    "precision": "auto",
    "task_runner": {"kind": "threads", "workers": 1, "address": None},
}


def test_a_fold_reruns_only_the_stages_of_its_dataset(plants):
    """dvc.yaml expanded with two leave-one-out datasets (`agri` trained): changing `agri`'s
    held_out changes the tracked params of `prepare@agri` and of `agri`'s training and evaluation
    stages, and of no stage of another dataset."""
    from dvc.repo import Repo

    data = read_yaml(REPO / "params.yaml")
    data["datasets"]["agri"] = agri_entry(plants / "plants")
    data["datasets"]["other"] = agri_entry(plants / "plants")
    data["pipeline"]["train"] = [*data["pipeline"]["train"], "agri"]
    # `dvc init` in a subprocess: DVC's in-process logger may still hold a stream an earlier test closed
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=plants, check=True)
    (plants / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())

    def tracked() -> dict[str, list]:
        (plants / "params.yaml").write_text(yaml.safe_dump(presets.apply(data, {}), sort_keys=False))
        with Repo(str(plants)) as repo:
            return {
                stage.name: [d.read_params() for d in stage.deps if type(d).__name__ == "ParamsDependency"]
                for stage in repo.index.stages
            }

    before = tracked()
    data["datasets"]["agri"]["source"]["held_out"] = ["plant_10"]
    data["datasets"]["agri"]["source"]["val"] = ["001"]
    after = tracked()
    assert before.keys() == after.keys()
    changed = {name for name in before if before[name] != after[name]}
    assert "prepare@agri" in changed and "train_joint@agri" in changed and "evaluate@agri" in changed
    assert {"prepare@other", "prepare@synthetic"} <= before.keys() - changed
    assert all(name.split("@")[1].startswith("agri") for name in changed), changed
