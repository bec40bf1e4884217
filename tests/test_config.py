"""Strict params loading: every error names the file and the dotted key."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from syncvp.config import ParamsError, load_params, params_from_dict, to_plain
from syncvp.config.loader import read_yaml

REPO = Path(__file__).resolve().parents[1]


def raw_params() -> dict:
    return read_yaml(REPO / "params.yaml")


def load_modified(tmp_path: Path, edit) -> None:
    data = raw_params()
    edit(data)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    load_params(path)


def test_repo_params_load_and_round_trip(repo_params):
    assert repo_params.datasets["synthetic"].modalities == ("rgb", "depth")
    assert params_from_dict(to_plain(repo_params)) == repo_params


@pytest.mark.parametrize(
    "edit, key, words",
    [
        (
            lambda d: d["datasets"]["synthetic"]["source"].update(colour=3),
            "datasets.synthetic.source.colour",
            "not a known key",
        ),
        (lambda d: d["run"].pop("seed"), "run.seed", "is missing"),
        (
            lambda d: d["datasets"]["synthetic"]["source"].update(frames="30"),
            "datasets.synthetic.source.frames",
            "expected an integer",
        ),
        (
            lambda d: d["datasets"]["synthetic"]["source"].update(frames=-3),
            "datasets.synthetic.source.frames",
            "must be >= 2",
        ),
        (
            lambda d: d["datasets"]["synthetic"].update(context_frames=True),
            "datasets.synthetic.context_frames",
            "expected an integer",
        ),
        (
            lambda d: d["datasets"]["synthetic"]["source"].update(kind="nope"),
            "datasets.synthetic.source.kind",
            "must be one of",
        ),
        (lambda d: d["run"].update(device="tpu"), "run.device", "must be one of"),
        (
            lambda d: d["datasets"]["synthetic"].update(resolution=[32]),
            "datasets.synthetic.resolution",
            "list of 2 items",
        ),
        (
            lambda d: d["datasets"]["synthetic"].update(modalities=["rgb", "rgb"]),
            "datasets.synthetic.modalities",
            "duplicates",
        ),
        (
            lambda d: d["datasets"]["synthetic"].update(modalities=["rgb", "flow"]),
            "datasets.synthetic.modalities[1]",
            "not provided",
        ),
        (
            lambda d: d["datasets"]["synthetic"].update(rollout_frames=40),
            "datasets.synthetic.rollout_frames",
            "exceeds",
        ),
        (
            lambda d: d["pipeline"].update(prepare={}),
            "pipeline.prepare",
            "must be {era5_synthetic: data/raw/era5_synthetic, synthetic: data/raw/synthetic}",
        ),
        (
            lambda d: d["pipeline"].update(synthesize=[]),
            "pipeline.synthesize",
            "must be ['era5_synthetic', 'synthetic']",
        ),
        (lambda d: d["pipeline"].update(train=[]), "pipeline.autoencoders", "must be {} (implied by"),
        (lambda d: d["pipeline"].update(autoencoders={}), "pipeline.autoencoders", "synthetic-rgb-future: synthetic"),
        (lambda d: d["pipeline"].update(context_role="context"), "pipeline.context_role", "must be future"),
        (lambda d: d["autoencoder"].update(axis_token="cls"), "autoencoder.axis_token", "must be one of"),
        (lambda d: d["train_autoencoder"].update(betas=[0.5, 1.5]), "train_autoencoder.betas", "must lie in [0, 1)"),
        (lambda d: d["weights"].update(i3d=5), "weights.i3d", "expected a path string"),
        # across sections: what the stages check when they start, checked when params load
        (lambda d: d["sampling"].update(steps=1001), "sampling.steps", "1001 exceeds diffusion.timesteps 1000"),
        (
            lambda d: d["sampling"].update(method="ddpm", steps=50),
            "sampling.steps",
            "ddpm runs all diffusion.timesteps",
        ),
        (
            lambda d: d["evaluate"].update(conditions=["all", "flow"]),
            "evaluate.conditions[1]",
            "'flow' is neither all, each, a modality of the dataset ['rgb', 'depth'], nor complete-<one of them>",
        ),
        (
            lambda d: d["evaluate"]["noise"].update(modality="flow", sigmas=[2.5]),
            "evaluate.noise.modality",
            "'flow' is not a modality of the dataset",
        ),
        (
            lambda d: d["train_joint"].update(explicit={"rgb+flow": 0.5, "rgb": 0.5}),
            "train_joint.explicit.rgb+flow",
            "names ['flow'], not modalities of the dataset",
        ),
    ],
)
def test_bad_params_name_the_key(tmp_path, edit, key, words):
    with pytest.raises(ParamsError) as err:
        load_modified(tmp_path, edit)
    message = str(err.value)
    assert str(tmp_path / "params.yaml") in message
    assert f": {key}:" in message, message
    assert words in message, message


def test_explicit_patterns_with_a_dataset_of_other_modalities_name_it_and_the_way_out(tmp_path):
    """The shipped `train_joint.explicit` names rgb and depth: training a SYNTHIA dataset (rgb +
    semantic) next to them is refused naming that dataset and the patterns that serve both."""
    from syncvp.__main__ import _fanout_yaml

    def edit(d):
        d["datasets"]["synthia"] = {
            "source": {
                "kind": "synthia",
                "root": str(tmp_path / "synthia"),
                "camera": "Stereo_Left/Omni_F",
                "splits": {"train": ["a"], "val": ["b"], "test": ["c"]},
                "frame_step": 1,
                "video_frames": 30,
                "stride": 30,
                "resize": "area",
            },
            "modalities": ["rgb", "semantic"],
            "resolution": [32, 32],
            "context_frames": 2,
            "future_frames": 8,
            "rollout_frames": 16,
            "pseudo_depth": None,
            "models": None,
        }
        d["pipeline"]["train"] = ["synthetic", "synthia"]
        (tmp_path / "fanout.yaml").write_text(yaml.safe_dump(d))
        d["pipeline"] = yaml.safe_load(_fanout_yaml(str(tmp_path / "fanout.yaml")))["pipeline"]

    with pytest.raises(
        ParamsError,
        match=r"train_joint\.explicit\.\S*depth: names \['depth'\], not modalities of "
        r"the dataset 'synthia' \(\['rgb', 'semantic'\]\).*patterns to official or "
        r"independent \(and explicit: null\)",
    ):
        load_modified(tmp_path, edit)

    def official(d):
        edit(d)
        d["train_joint"].update(patterns="official", explicit=None)

    load_modified(tmp_path, official)


def test_yaml12_floats_and_int_promotion(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("a: 1e-4\nb: 3\nc: .5\n")
    assert read_yaml(path) == {"a": 1e-4, "b": 3, "c": 0.5}

    def edit(d):
        d["datasets"]["synthetic"]["source"]["speed"] = 1  # int for a float field is fine

    load_modified(tmp_path, edit)


def test_configs_are_frozen(repo_params):
    with pytest.raises(dataclasses.FrozenInstanceError):
        repo_params.run.seed = 1


def test_replace_revalidates(repo_params):
    with pytest.raises(ParamsError, match="must be >= 1"):
        from syncvp.config import replace

        replace(repo_params.datasets["synthetic"], context_frames=0)


def test_derived_values(repo_params):
    ds = repo_params.datasets["synthetic"]
    assert ds.clip_frames == ds.context_frames + ds.future_frames
    assert repo_params.paths.store("synthetic", "test") == Path("data/processed/synthetic/test.nc")
    with pytest.raises(ValueError):
        repo_params.paths.store("synthetic", "dev")


def test_config_imports_no_torch():
    code = "import sys, syncvp.config; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [1, 2\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(bad)


def test_a_key_given_twice_is_refused_naming_the_lines(tmp_path):
    lines = (REPO / "params.yaml").read_text().splitlines()
    first = lines.index("sampling:") + 2  # 1-based number of its `method:` line
    assert lines[first - 1].startswith("  method:")
    lines.insert(first, "  method: ddpm")
    path = tmp_path / "params.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParamsError) as err:
        load_params(path)
    assert str(err.value) == (
        f"{path}: line {first + 1}: key 'method' is given twice (first on line {first}); DVC refuses such a file"
    )
