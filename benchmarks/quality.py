"""Learning curve of the default model: quality against training budget (hand-run, slow).

    python -m benchmarks.quality [--params params.yaml] [--dataset synthetic] [--steps 300,1000,3000]
                                 [--split val] [--videos N] [--trajectories 2] [--out bench-quality]
                                 [--set key=value ...]

For each budget N it trains both stage-1 models and the joint model for N optimizer steps each
(`train_single.steps = train_joint.steps = N`, every other setting from params.yaml, `--set`
overrides with dotted keys like `dvc exp run -S`), reusing the trained autoencoders under
`paths.models` (run `dvc repro` or `make repro` first), and evaluates the joint model on `--split`
(default val: settings are chosen on val, never on test) next to the stage-1 models, copy-last and
the autoencoder ceiling, in the standard mode: every modality observed, each one alone (scored on
the others: the missing-modality settings), and the cross-modal alignment of every setting next
to that of the ground truth. It prints one table for all budgets, so anyone can see how far the
default is from convergence, and writes `<out>/quality.md` and `<out>/quality.json` (every
budget's models and evaluation stay under `<out>/<N>/`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import yaml

from syncvp import evaluation
from syncvp.config import ROLES
from syncvp.config.loader import read_yaml
from syncvp.config.params import params_from_dict
from syncvp.metrics.alignment import pair_key
from syncvp.runtime import configure_threads
from syncvp.training import diffusion_train
from syncvp.training.diffusion_job import plan_joint, plan_single

METRICS = ("ssim", "psnr", "l2")
COLUMNS = ("joint", "single", "copy-last", "autoencoder", "ground truth")


def rows(modalities) -> list[tuple[str, str, str, str]]:
    """(label, setting, modality key, metric) of every row of a budget: every modality observed,
    each modality alone scored on the others, then the alignment of each pair in those settings."""
    out = [(f"all → {m}", "all", m, metric) for m in modalities for metric in METRICS]
    out += [(f"{a} only → {b}", a, b, metric) for a in modalities for b in modalities if b != a for metric in METRICS]
    pairs = [pair_key(a, b) for i, a in enumerate(modalities) for b in modalities[i + 1 :]]
    for pair in pairs:
        out.append((f"all → {pair}", "all", pair, "alignment"))
        out += [(f"{a} only → {pair}", a, pair, "alignment") for a in modalities]
    return out


def _set(data: dict, dotted: str, value) -> None:
    *head, last = dotted.split(".")
    for key in head:
        data = data[key]
    if last not in data:
        raise SystemExit(f"--set {dotted}: no such key in params.yaml")
    data[last] = value


def _params(args, root: Path, steps: int):
    data = read_yaml(Path(args.params))
    for kv in args.set:
        key, _, value = kv.partition("=")
        _set(data, key, yaml.safe_load(value))
    _set(data, "paths.models", str(root / "models"))
    _set(data, "paths.eval", str(root / "eval"))
    _set(data, "train_single.steps", steps)
    _set(data, "train_joint.steps", steps)
    return params_from_dict(data, f"{args.params} (+ benchmark overrides)")


def _link_autoencoders(base, params, dataset: str) -> None:
    """Symlink the trained autoencoders of `dataset` (under `base`'s models) into the budget's models folder."""
    units = [(m, role) for m in base.datasets[dataset].modalities for role in ROLES]
    found = [
        (base.paths.autoencoder(dataset, *u).root, params.paths.autoencoder(dataset, *u).root)
        for u in units
        if base.paths.autoencoder(dataset, *u).model.is_file()
    ]
    if not found:
        raise SystemExit(
            f"no trained autoencoders of {dataset!r} under {base.paths.models}: run `make repro` "
            f"(or `dvc repro train_autoencoder`) first"
        )
    params.paths.models.mkdir(parents=True, exist_ok=True)
    for src, link in found:
        if not link.exists():
            link.symlink_to(src.resolve())


def _train(params, dataset: str) -> float:
    """Train the stage-1 models and the joint model (skipping finished ones); the seconds their
    training loops took, as each model's timings.json records them (so a rerun that finds the
    models trained reports the same figure)."""
    ds = params.datasets[dataset]
    jobs = []
    for m in ds.modalities:
        job = plan_single(
            f"{dataset}-{m}",
            dataset=ds,
            unet=params.unet_for(dataset),
            diffusion=params.diffusion,
            train=params.train_single,
            run=params.run,
            paths=params.paths,
        )
        if not job.model_file.is_file():
            diffusion_train.train(job)
            diffusion_train.export(job)
        jobs.append(job)
    job = plan_joint(
        dataset,
        dataset=ds,
        unet=params.unet_for(dataset),
        diffusion=params.diffusion,
        joint=params.joint,
        train=params.train_joint,
        run=params.run,
        paths=params.paths,
    )
    if not job.model_file.is_file():
        diffusion_train.train(job)
        diffusion_train.export(job)
    return sum(json.loads(j.files.timings.read_text())["train_seconds"] for j in (*jobs, job))


def _evaluate(params, dataset: str, args) -> dict:
    ev = dataclasses.replace(
        params.evaluate,
        model="joint",
        split=args.split,
        videos=args.videos,
        trajectories=args.trajectories,
        conditions=("all", "each"),
        protocols=("standard",),
        metrics=(*METRICS, "alignment"),
        baselines=("single", "autoencoder"),
        samples=4,
    )
    plan = evaluation.plan_evaluation(
        dataset, params.datasets[dataset], ev, params.sampling, params.weights, params.paths
    )
    path = evaluation.evaluate(plan)
    return json.loads(Path(path).read_text())[dataset]


def _cell(metrics: dict, setting: str, modality: str, metric: str) -> str:
    leaf = metrics.get(setting, {}).get("standard", {}).get(modality, {})
    if metric not in leaf:
        return "–"
    digits = {"ssim": 3, "psnr": 2, "l2": 4, "alignment": 3}[metric]
    best, mean = leaf[metric], leaf.get(f"{metric}_mean")
    if mean is None or round(mean, digits) == round(best, digits):
        return f"{best:.{digits}f}"
    return f"{best:.{digits}f} / {mean:.{digits}f}"


def table(results: dict[int, dict], modalities, split: str) -> str:
    """Markdown: one row per (budget, observed → scored, metric): joint (best / mean of N) | single |
    copy-last | autoencoder | ground truth (the last only for alignment)."""
    lines = [
        f"Standard mode, {split} split; joint and single cells are best of N / mean over N; "
        "copy-last needs every modality observed.",
        "",
        "| steps (each model) | train min | observed → scored | metric | " + " | ".join(COLUMNS) + " |",
        "| ---: | ---: | --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for steps, r in sorted(results.items()):
        for label, setting, key, metric in rows(tuple(modalities)):
            sources = (
                setting,
                f"single-{setting}",
                "copy_last" if setting == "all" else None,
                "autoencoder",
                "ground_truth" if metric == "alignment" else None,
            )
            cells = ["–" if s is None else _cell(r["metrics"], s, key, metric) for s in sources]
            lines.append(
                f"| {steps} | {r['train_seconds'] / 60:.1f} | {label} | {metric} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--steps", default="300,1000,3000", help="comma-separated budgets (steps per model)")
    ap.add_argument("--split", default="val", choices=("train", "val", "test"))
    ap.add_argument("--videos", type=int, default=None, help="first N videos of the split (default all)")
    ap.add_argument("--trajectories", type=int, default=2)
    ap.add_argument("--out", default="bench-quality")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="params overrides (dotted keys)")
    args = ap.parse_args(argv)
    base = params_from_dict(read_yaml(Path(args.params)), args.params)
    configure_threads(base.run.threads)
    out = Path(args.out)
    results = {}
    for steps in (int(s) for s in args.steps.split(",")):
        root = out / str(steps)
        params = _params(args, root, steps)
        _link_autoencoders(base, params, args.dataset)
        seconds = _train(params, args.dataset)
        results[steps] = {"train_seconds": seconds, "metrics": _evaluate(params, args.dataset, args)}
        print(f"budget {steps}: trained in {seconds / 60:.1f} min", flush=True)
    text = table(results, base.datasets[args.dataset].modalities, args.split)
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.md").write_text(text + "\n")
    (out / "quality.json").write_text(json.dumps({str(k): v for k, v in results.items()}, indent=1, default=str))
    print(text)


if __name__ == "__main__":
    main()
