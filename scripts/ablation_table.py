"""Print evaluation results of several runs as a Markdown table shaped like the paper's Tables 2-3.

    dvc exp show --json > exps.json
    python -m scripts.ablation_table --exp-json exps.json --param train_joint.init
    python -m scripts.ablation_table base=eval/synthetic/metrics.json noisy=other/metrics.json

Rows are experiments (or NAME=metrics.json files); columns are `modality:metric` values of one
dataset, setting (`all`, a modality, `all-noise-depth-2p5`, `copy_last`, ...) and mode (`paper`
or `standard`), read from the `evaluate` stage's metrics.json; `--param` adds params columns
(from `dvc exp show --json` only). Missing values (a skipped metric) print as "n/a". Experiments
from `dvc exp run --queue` / `--temp` are read like any other once finished; queued, running and
failed ones are left out (`dvc exp show --json` gives them the baseline's metrics).
`--settings` makes one row per setting of each run instead (Table 3: the noise settings).
`--only PREFIX` keeps the runs named PREFIX...; `--summary` adds their mean and standard deviation
(the leave-one-out result over the folds of `python -m syncvp folds`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any, Iterator

DEFAULT_COLUMNS = "rgb:fvd,rgb:ssim,rgb:lpips,depth:ssim,depth:l2"  # paper Table 2 (Table 3: the rgb ones)
ARROWS = {"fvd": "↓", "lpips": "↓", "l2": "↓", "l1": "↓", "ssim": "↑", "psnr": "↑", "alignment": "↑"}
ARROWS |= {"crps": "↓", "l1_ensemble_mean": "↓", "spread": "→1", "accuracy": "↑", "miou": "↑"}  # spread: 1 = calibrated


def experiments(exp_show: Any) -> Iterator[tuple[str, dict, dict]]:
    """(name, {metrics file: data}, flat params) of every revision in `dvc exp show --json` output."""
    if isinstance(exp_show, list):
        for item in exp_show:
            yield from experiments(item)
    elif isinstance(exp_show, dict):
        state = (exp_show.get("executor") or {}).get("state", "success")
        if state != "success":  # queued, running or failed (`dvc exp run --queue`): `dvc exp show`
            return  # repeats the baseline's metrics for it; a finished one is null or "success"
        data = exp_show.get("data")
        if isinstance(data, dict) and "rev" in exp_show:
            metrics = {path: entry.get("data") or {} for path, entry in (data.get("metrics") or {}).items()}
            params: dict = {}
            for entry in (data.get("params") or {}).values():
                params.update(flatten(entry.get("data") or {}))
            rev = str(exp_show["rev"])
            yield exp_show.get("name") or (rev[:7] if len(rev) == 40 else rev), metrics, params
        for key in ("experiments", "revs"):
            yield from experiments(exp_show.get(key))


def flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(flatten(value, name + ".") if isinstance(value, dict) else {name: value})
    return out


def lookup(metrics: dict, dataset: str, setting: str, mode: str, column: str) -> Any:
    """The value of `modality:metric` (or None) in one evaluation metrics.json."""
    modality, _, metric = column.partition(":")
    try:
        return metrics[dataset][setting][mode][modality][metric]
    except (KeyError, TypeError):
        return None


def _cell(value: Any, digits: int) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):  # a params flag (joint.same_noise), not a number
        return str(value).lower()
    return f"{value:.{digits}g}" if isinstance(value, (int, float)) else str(value)


def table(
    runs: list[tuple[str, dict, dict]],
    *,
    dataset: str,
    settings: list[str],
    mode: str,
    columns: list[str],
    params: list[str],
    digits: int = 4,
    summary: bool = False,
) -> str:
    """The Markdown table: one row per run (and per setting when several are asked for); with
    `summary`, then a mean row and a sample standard deviation row per setting over those runs
    (the leave-one-out folds' result; a run missing a value is left out of that column's figures)."""
    names = [f"{c.split(':')[0]} {c.split(':')[1].upper()}{ARROWS.get(c.split(':')[1], '')}" for c in columns]
    head = ["run", *params, *(["setting"] if len(settings) > 1 else []), *names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    values: dict[str, list[list[float]]] = {setting: [[] for _ in columns] for setting in settings}
    for name, files, flat in runs:
        data = next((d for d in files.values() if isinstance(d, dict) and dataset in d), None)
        if data is None:
            continue
        for setting in settings:
            row = [name, *(_cell(flat.get(p), digits) for p in params), *([setting] if len(settings) > 1 else [])]
            cells = [lookup(data, dataset, setting, mode, c) for c in columns]
            row += [_cell(v, digits) for v in cells]
            lines.append("| " + " | ".join(row) + " |")
            for kept, v in zip(values[setting], cells):
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    kept.append(float(v))
    if summary:
        for setting in settings:
            for label, stat in (("mean", statistics.fmean), ("std", statistics.stdev)):
                cols = values[setting]
                row = [f"{label} (n={max(len(v) for v in cols)})", *([""] * len(params))]
                row += [setting] if len(settings) > 1 else []
                row += [_cell(stat(v) if len(v) >= (1 if label == "mean" else 2) else None, digits) for v in cols]
                lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.ablation_table", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", metavar="NAME=METRICS_JSON", help="evaluation metrics.json files")
    parser.add_argument("--exp-json", help="output of `dvc exp show --json` ('-' = stdin)")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--settings", default="all", help="comma-separated settings (default all)")
    parser.add_argument("--mode", default="paper", choices=("paper", "standard"))
    parser.add_argument("--columns", default=DEFAULT_COLUMNS, help=f"modality:metric list (default {DEFAULT_COLUMNS})")
    parser.add_argument("--param", action="append", default=[], help="a params column, e.g. joint.same_noise")
    parser.add_argument("--only", help="keep the runs whose name starts with this (e.g. agriculture-loo-)")
    parser.add_argument("--summary", action="store_true", help="add mean and std rows over the runs shown")
    args = parser.parse_args(argv)
    runs: list[tuple[str, dict, dict]] = []
    if args.exp_json:
        text = sys.stdin.read() if args.exp_json == "-" else Path(args.exp_json).read_text()
        runs += list(experiments(json.loads(text)))
    for item in args.files:
        name, _, path = item.rpartition("=")
        runs.append((name or path, {path: json.loads(Path(path).read_text())}, {}))
    if args.only:
        runs = [run for run in runs if run[0].startswith(args.only)]
    if not runs:
        parser.error(
            "give --exp-json or NAME=metrics.json files" + (f" (none named {args.only}*)" if args.only else "")
        )
    print(
        table(
            runs,
            dataset=args.dataset,
            settings=args.settings.split(","),
            mode=args.mode,
            columns=args.columns.split(","),
            params=args.param,
            summary=args.summary,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
