"""scripts/ablation_table.py reads `dvc exp show --json` (DVC 3 layout) and metrics.json files."""

from __future__ import annotations

import json

import pytest

from scripts.ablation_table import experiments, main


def _metrics(ssim):
    """metrics.json of the evaluate stage (numbers only) with FVD skipped: no fvd key."""
    return {
        "synthetic": {
            "all": {"paper": {"rgb": {"ssim": ssim, "lpips": 0.2}, "depth": {"ssim": 0.8, "l2": 7.3}}},
            "all-noise-depth-5": {"paper": {"rgb": {"ssim": ssim - 0.01}}},
        }
    }


def _exp(rev, name, metrics, init, children=None):
    data = {
        "rev": rev,
        "timestamp": None,
        "meta": {},
        "deps": {},
        "outs": {},
        "metrics": {"eval/synthetic/metrics.json": {"data": metrics}},
        "params": {"params.yaml": {"data": {"train_joint": {"init": init}}}},
    }
    return {"rev": rev, "name": name, "data": data, "error": None, "experiments": children}


def test_exp_show_json_to_markdown(tmp_path, capsys):
    child = {
        "revs": [_exp("b" * 40, "scratch-run", _metrics(0.674), "scratch")],
        "executor": None,
        "name": "scratch-run",
    }
    dump = [
        _exp("workspace", None, _metrics(0.649), "stage1"),
        _exp("a" * 40, "main", _metrics(0.649), "stage1", [child]),
    ]
    assert [name for name, _, _ in experiments(dump)] == ["workspace", "main", "scratch-run"]
    queued = {  # `dvc exp run --queue`: until it has run, its rev repeats the baseline's metrics
        "revs": [_exp("c" * 40, "same-noise", _metrics(0.649), "stage1")],
        "executor": {"state": "queued", "name": "dvc-task", "local": None},
        "name": "same-noise",
    }
    done = {  # a queued experiment that has run keeps its executor entry, state "success"
        "revs": [_exp("d" * 40, "indep-noise", _metrics(0.7), "stage1")],
        "executor": {"state": "success", "name": "dvc-task", "local": None},
        "name": "indep-noise",
    }
    dump[1]["experiments"] += [queued, done]
    assert [name for name, _, _ in experiments(dump)] == ["workspace", "main", "scratch-run", "indep-noise"]
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(dump))
    assert main(["--exp-json", str(path), "--param", "train_joint.init"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| run | train_joint.init | rgb FVD↓ | rgb SSIM↑ | rgb LPIPS↓ | depth SSIM↑ | depth L2↓ |"
    assert lines[4] == "| scratch-run | scratch | n/a | 0.674 | 0.2 | 0.8 | 7.3 |"


def test_metrics_files_with_settings(tmp_path, capsys):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(_metrics(0.65)))
    assert main([f"base={path}", "--settings", "all,all-noise-depth-5", "--columns", "rgb:ssim"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:] == ["| base | all | 0.65 |", "| base | all-noise-depth-5 | 0.64 |"]


def test_flag_params_print_as_flags_not_numbers():
    from scripts.ablation_table import _cell

    assert _cell(True, 4) == "true" and _cell(False, 4) == "false"
    assert _cell(1, 4) == "1" and _cell(0.123456, 3) == "0.123" and _cell(None, 4) == "n/a"


def test_folds_summary_is_the_mean_and_sample_std_of_the_runs_shown(tmp_path, capsys):
    """`--only agri-loo- --summary`: three folds (a fourth run of another name left out; one fold
    without depth L2), mean and sample std by hand."""
    files = []
    for name, ssim, l2 in (
        ("agri-loo-a", 0.5, 1.0),
        ("agri-loo-b", 0.6, None),
        ("agri-loo-c", 0.7, 4.0),
        ("base", 0.1, 9.0),
    ):
        metrics = {"synthetic": {"all": {"paper": {"rgb": {"ssim": ssim}, "depth": {"l2": l2} if l2 else {}}}}}
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(metrics))
        files.append(f"{name}={path}")
    assert main([*files, "--columns", "rgb:ssim,depth:l2", "--only", "agri-loo-", "--summary"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == [
        "| agri-loo-a",
        "| agri-loo-b",
        "| agri-loo-c",
        "| mean (n=3)",
        "| std (n=3)",
    ]
    assert lines[-2] == "| mean (n=3) | 0.6 | 2.5 |"  # ssim (.5+.6+.7)/3; l2 (1+4)/2: the missing value left out
    assert lines[-1] == "| std (n=3) | 0.1 | 2.121 |"  # sqrt(((.1)^2+0+(.1)^2)/2) = .1; sqrt(2*1.5^2/1) = 2.1213
    with pytest.raises(SystemExit):
        main([*files, "--only", "nothing-"])
    assert "(none named nothing-*)" in capsys.readouterr().err
