"""Print where a pipeline run left its results (called by `make repro`), then each trained
dataset's comparison table (`<eval>/<ds>/tables/compare.md`: the joint model next to the stage-1
models, copy-last and the autoencoder ceiling), rebuilt from metrics.json when only that exists.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from syncvp.config import Params, load_params
from syncvp.config.layout import COMPARE


def _line(label: str, path: Path) -> str:
    mark = "" if path.exists() else "  (not produced yet)"
    return f"  {label:<30} {path}{mark}"


def compare(params: Params, name: str) -> str:
    """The dataset's compare.md, rebuilt from metrics.json if only that exists, or a "not produced yet" line."""
    out = params.paths.evaluation(name)
    table = out.table(COMPARE)
    if table.is_file():
        return table.read_text().rstrip("\n")
    metrics = out.metrics
    if metrics.is_file():
        from syncvp.evaluation.compare import compare_markdown  # imports torch: only on this path

        data = json.loads(metrics.read_text())
        return compare_markdown(data, name, params.evaluate.model, params.datasets[name].modalities).rstrip("\n")
    return f"{name}: comparison table not produced yet ({table}; run `dvc repro evaluate@{name}`)"


def describe(params: str | Path | Params = "params.yaml") -> str:
    """The results of a run of `params` (a params file or loaded Params), as printed by `make repro`."""
    params = params if isinstance(params, Params) else load_params(params)
    paths = params.paths
    lines = ["", "Results"]
    for name in params.pipeline.prepare:
        lines.append(f"dataset {name}:")
        stores = paths.clip_stores(name)
        lines.append(_line("clip stores", stores.root))
        lines.append(_line("preview", stores.preview))
        if name in params.pipeline.train:
            units = [u for u, ds in {**params.pipeline.autoencoders, **params.pipeline.single}.items() if ds == name]
            for unit in units:
                lines.append(_line(f"model {unit}", paths.model_dir(unit)))
            out = paths.evaluation(name)
            lines.append(_line("joint model", paths.joint(name).model))
            lines.append(_line("metrics", out.metrics))
            lines.append(_line("tables", out.table("summary.csv")))
            lines.append(_line("plots", out.plots))
            lines.append(_line("sample videos", out.samples))
            lines.append(_line("spread maps", out.uncertainty))
            lines.append(_line("comparison table", out.table(COMPARE)))
    lines += [
        "",
        "Compare runs: `dvc metrics show`, `dvc plots show` (writes dvc_plots/index.html), `dvc exp show`.",
        "Watch runs: `make ui`, then open http://127.0.0.1:4200.",
    ]
    for name in params.pipeline.joint:  # the evaluated datasets (evaluate@<dataset>)
        lines += ["", compare(params, name)]
    return "\n".join(lines)


if __name__ == "__main__":
    print(describe(*sys.argv[1:]))
