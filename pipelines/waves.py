"""Run the DVC pipeline group by group, the instances of each group side by side (`make repro`).

    python -m pipelines.waves [--threads N] [--dry-run]

`dvc repro` runs one stage at a time, and one tiny training process does not keep two cores busy:
on the default 2-core machine two 1-thread trainings side by side finish in about the time one
2-thread training takes (two 1000-step autoencoders: ~3.6 min instead of ~6.9 min). DVC itself
allows concurrent `dvc repro` runs on disjoint stages (it locks per output path), so this runner
walks the stage groups of `dvc.yaml` in file order (synthesize, download_era5, pseudo_depth,
prepare, train_autoencoder, train_single, train_joint, evaluate) and runs the `foreach`
instances of a group, which never depend on each other, as parallel `dvc repro --single-item`
processes: at most N at once (N = `run.threads` of params.yaml, or `--threads`; 0 = the CPU
count), each told to use N / (processes at once) torch threads through `SYNCVP_THREADS` (see
`syncvp.runtime.configure_threads`). A group with one instance runs alone with all N.

A stage that is up to date is skipped by DVC as usual. After the last group a plain `dvc repro`
checks the whole graph (a no-op when every group succeeded), so the result is what `dvc repro`
gives; only the order and the thread count per process differ. When an instance fails, the
others of its group finish, and the runner stops with the failing stage's exit status.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml


def stage_names(dvc: str = "dvc") -> list[str]:
    """Every stage instance of dvc.yaml in file order (`dvc stage list --name-only`)."""
    out = subprocess.run([dvc, "stage", "list", "--name-only"], check=True, capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def groups(names: list[str]) -> list[list[str]]:
    """Stage instances grouped by the stage they come from (`<group>@<item>`), groups in first-seen order."""
    order: dict[str, list[str]] = {}
    for name in names:
        order.setdefault(name.split("@", 1)[0], []).append(name)
    return list(order.values())


def threads_per_process(total: int, running: int) -> int:
    """torch threads for each of `running` concurrent processes sharing `total` threads (>= 1)."""
    if total < 1 or running < 1:
        raise ValueError(f"need total >= 1 and running >= 1 threads/processes, got {total}, {running}")
    return max(1, total // running)


def total_threads(params_file: Path) -> int:
    """`run.threads` of the params file; 0 (torch's default) means the CPU count."""
    run = (yaml.safe_load(params_file.read_text()) or {}).get("run", {})
    threads = int(run.get("threads", 0) or 0)
    return threads if threads > 0 else (os.cpu_count() or 1)


def run_group(group: list[str], total: int, dvc: str = "dvc", log=print) -> int:
    """Run the instances of one group, at most `total` at once; the first non-zero exit status, or 0."""
    status = 0
    for start in range(0, len(group), total):
        batch = group[start : start + total]
        env = dict(os.environ)
        if len(batch) > 1:
            env["SYNCVP_THREADS"] = str(threads_per_process(total, len(batch)))
            log(f"[waves] {len(batch)} stages side by side, {env['SYNCVP_THREADS']} thread(s) each: {', '.join(batch)}")
        procs = [subprocess.Popen([dvc, "repro", "--single-item", name], env=env) for name in batch]
        for name, proc in zip(batch, procs):
            code = proc.wait()
            if code and not status:
                log(f"[waves] {name} failed (exit status {code})")
                status = code
        if status:
            return status
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pipelines.waves", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--params", default="params.yaml", type=Path)
    ap.add_argument("--threads", type=int, default=None, help="threads shared by a group (default: run.threads)")
    ap.add_argument("--dry-run", action="store_true", help="print the groups and exit")
    args = ap.parse_args(argv)
    total = args.threads if args.threads is not None else total_threads(args.params)
    if total < 1:
        ap.error(f"--threads must be >= 1, got {total}")
    plan = groups(stage_names())
    if args.dry_run:
        for group in plan:
            print(" | ".join(group))
        return 0
    start = time.monotonic()
    for group in plan:
        status = run_group(group, total)
        if status:
            return status
    status = subprocess.call(["dvc", "repro"])
    print(f"[waves] pipeline finished in {time.monotonic() - start:.0f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
