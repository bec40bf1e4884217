"""Print where a pipeline run left its results (called by `make repro`)."""

from __future__ import annotations

import sys
from pathlib import Path

from syncvp.config import load_params


def _line(label: str, path: Path) -> str:
    mark = "" if path.exists() else "  (not produced yet)"
    return f"  {label:<30} {path}{mark}"


def describe(params_path: str = "params.yaml") -> str:
    params = load_params(params_path)
    paths = params.paths
    lines = ["", "Results"]
    for name in params.pipeline.prepare:
        lines.append(f"dataset {name}:")
        lines.append(_line("clip stores", paths.processed_dir(name)))
        lines.append(_line("preview", paths.processed_dir(name) / "preview.png"))
        if name in params.pipeline.train:
            units = [u for u, ds in {**params.pipeline.autoencoders, **params.pipeline.single}.items() if ds == name]
            for unit in units:
                lines.append(_line(f"model {unit}", paths.model_dir(unit)))
            lines.append(_line("joint model", paths.model_dir(name) / "joint.pt"))
            lines.append(_line("metrics", paths.eval_dir(name) / "metrics.json"))
            lines.append(_line("tables", paths.eval_dir(name) / "tables" / "summary.csv"))
            lines.append(_line("plots", paths.eval_dir(name) / "plots"))
            lines.append(_line("sample videos", paths.eval_dir(name) / "samples"))
    lines += ["", "Compare runs: `dvc metrics show`, `dvc plots show` (writes dvc_plots/index.html), `dvc exp show`.",
              "Watch runs: `make ui`, then open http://127.0.0.1:4200."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe(*sys.argv[1:]))
