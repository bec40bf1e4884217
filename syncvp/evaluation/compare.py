"""`tables/compare.md`: the evaluated model next to its references, small enough to read at a glance.

Built from metrics.json's dict alone (so it can be rebuilt from a metrics.json file), in the
`standard` mode (the `paper` mode when only that one was computed). Two tables:

1. one row per (observed -> scored modality, metric): first every modality of the setting `all`,
   then the missing-modality settings ("rgb only -> depth": only rgb observed, depth scored),
   with the columns model (the joint model, or the stage-1 models with `evaluate.model: single`),
   single (`single-<condition>`), copy-last (`copy_last`; "–" for an unobserved modality, whose
   last frame does not exist), flow (`flow`, the last frame carried along its optical flow; "–"
   likewise; the column only when it was computed) and autoencoder (the ceiling, the same for
   every condition);
2. `alignment` of each pair "<a>+<b>" per condition, with the ground truth's value as reference;
3. modality completion (settings `complete-<g>`: every frame of g given, the others completed),
   one row per (given -> completed modality, metric), next to the joint model's forecasts of that
   modality with only g observed and with every modality observed, the stage-1 model, copy-last
   and the autoencoder (the forecasts see the completed modality's context frames, except the
   g-only one; completion never does, but sees g's future).

A cell is "best / mean" (best of N trajectories / mean over N) when the two differ, one value
otherwise (N = 1, the one-trajectory references, FVD, the ensemble metrics `crps`,
`l1_ensemble_mean` and `spread`, the spread-skill ratio: best near 1); "–" where nothing was
computed (the ensemble metrics of a one-trajectory reference such as copy-last). Values
are rounded per metric (DECIMALS); standard-mode values are unscaled (LPIPS in [0, 1]).
"""

from __future__ import annotations

import math
from typing import Sequence

DECIMALS = {"fvd": 1, "ssim": 3, "psnr": 2, "lpips": 3, "l2": 4, "l1": 2, "alignment": 3, "accuracy": 3, "miou": 3}
DECIMALS |= {"flicker": 2, "fvd16": 1}
DECIMALS |= {"spread": 2, "spread_std": 2, "rmse_ensemble_mean": 2, "crps": 2, "l1_ensemble_mean": 2}
ARROWS = {"fvd": "↓", "ssim": "↑", "psnr": "↑", "lpips": "↓", "l2": "↓", "l1": "↓", "alignment": "↑"}
ARROWS |= {
    "fvd16": "↓",
    "flicker": "↓",
    "spread": "→ 1",
    "crps": "↓",
    "l1_ensemble_mean": "↓",
    "accuracy": "↑",
    "miou": "↑",
}
ORDER = ("fvd", "fvd16", "ssim", "psnr", "lpips", "l2", "accuracy", "miou", "l1", "crps", "l1_ensemble_mean", "spread")
DASH = "–"


def _number(value, metric: str) -> str:
    if isinstance(value, str):  # "nan" / "inf" as written in metrics.json
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.{DECIMALS.get(metric, 3)}f}"


def cell(leaf: dict | None, metric: str) -> str:
    """ "best / mean", or one value when they agree or there is no mean; "–" when absent."""
    if not leaf or metric not in leaf:
        return DASH
    best, mean = _number(leaf[metric], metric), leaf.get(f"{metric}_mean")
    if mean is None or _number(mean, metric) == best:
        return best
    return f"{best} / {_number(mean, metric)}"


def _leaf(data: dict, setting: str, mode: str, modality: str) -> dict | None:
    return data.get(setting, {}).get(mode, {}).get(modality)


def _mode(data: dict) -> str:
    modes = [m for s in data.values() if isinstance(s, dict) for m in s]
    return "standard" if "standard" in modes or not modes else modes[0]


def _line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_line(header), "|" + " --- |" * len(header), *(_line(r) for r in rows)]


def _metric_rows(data: dict, mode: str, condition: str, modality: str) -> list[list[str]]:
    """Rows of one (condition, scored modality): every metric of the model's setting."""
    leaf = _leaf(data, condition, mode, modality) or {}
    observed = "all" if condition == "all" else f"{condition} only"
    seen = condition in ("all", modality)  # the scored modality's own context frames were observed
    refs = [
        _leaf(data, f"single-{condition}", mode, modality),
        _leaf(data, "copy_last", mode, modality) if seen else None,
    ]
    if "flow" in data:
        refs.append(_leaf(data, "flow", mode, modality) if seen else None)
    refs.append(_leaf(data, "autoencoder", mode, modality))
    return [
        [
            f"{observed} → {modality}",
            f"{metric} {ARROWS.get(metric, '')}".strip(),
            cell(leaf, metric),
            *(cell(r, metric) for r in refs),
        ]
        for metric in ORDER
        if metric in leaf
    ]


def _observed(condition: str) -> str:
    if condition == "all":
        return "all"
    if condition.startswith("complete-"):
        return f"{condition[len('complete-') :]} given"
    return f"{condition} only"


def _alignment_rows(data: dict, mode: str, conditions: list[str]) -> list[list[str]]:
    """Rows of the pair metrics (`alignment`, then `flicker`) per pair and condition, with the
    ground truth's value."""
    pairs = sorted({k for s in data.values() if isinstance(s, dict) for k in s.get(mode, {}) if "+" in k})
    rows = []
    for pair in pairs:
        for metric in ("alignment", "flicker"):
            for c in ("all", *conditions):
                leaf = _leaf(data, c, mode, pair)
                if not leaf or metric not in leaf or (metric == "flicker" and c == f"complete-{pair.split('+')[1]}"):
                    continue  # (the flicker of a given modality is its ground truth's)
                refs = [f"single-{c}", "copy_last" if c == "all" else None]
                refs += [("flow" if c == "all" else None)] if "flow" in data else []
                refs += ["autoencoder", "ground_truth"]
                rows.append(
                    [
                        f"{_observed(c)} → {pair}",
                        f"{metric} {ARROWS[metric]}",
                        cell(leaf, metric),
                        *(cell(_leaf(data, r, mode, pair) if r else None, metric) for r in refs),
                    ]
                )
    return rows


def _completion_rows(data: dict, mode: str, modalities: list[str]) -> list[list[str]]:
    """Rows of every completion setting `complete-<g>` per completed modality and metric."""
    rows = []
    for label in [k for k in data if k.startswith("complete-")]:
        g = label[len("complete-") :]
        for m in modalities:
            leaf = _leaf(data, label, mode, m)
            if m == g or not leaf:
                continue
            refs = [g, "all", "single-all", "copy_last", "autoencoder"]
            rows += [
                [
                    f"{g} given → {m}",
                    f"{metric} {ARROWS.get(metric, '')}".strip(),
                    cell(leaf, metric),
                    *(cell(_leaf(data, r, mode, m), metric) for r in refs),
                ]
                for metric in ORDER
                if metric in leaf
            ]
    return rows


def compare_markdown(metrics: dict, dataset: str, model: str = "joint", modalities: Sequence[str] = ()) -> str:
    """The comparison tables of one dataset as Markdown, from metrics.json's dict.

    Args:
        model: `evaluate.model` ("joint" or "single"), naming the model's column.
        modalities: the dataset's modalities, for the row order (default: metrics.json's order).
    """
    data = metrics.get(dataset, {})
    mode = _mode(data)
    scored = [m for m in data.get("all", {}).get(mode, {}) if "+" not in m]
    ordered = [m for m in modalities if m in scored] + [m for m in scored if m not in modalities]
    conditions = [c for c in ordered if c in data]
    completions = [k for k in data if k.startswith("complete-")]
    rows = [r for m in ordered for r in _metric_rows(data, mode, "all", m)]
    rows += [r for c in conditions for m in ordered if m != c for r in _metric_rows(data, mode, c, m)]
    name = "joint" if model == "joint" else "stage-1"
    columns = ["single", "copy-last", *(["flow"] if "flow" in data else []), "autoencoder"]
    lines = [
        f"### {dataset}: the {name} model next to the references ({mode} mode; cells: best of N / mean over N)",
        "",
        *_table(["observed → scored", "metric", name, *columns], rows),
    ]
    if not rows:
        lines += ["", f"(no `all` setting in {mode} mode: nothing to compare)"]
    aligned = _alignment_rows(data, mode, [*conditions, *completions])
    if aligned:
        lines += [
            "",
            "Cross-modal pair metrics: alignment (the second modality's edges within 1 px of the first's, beyond "
            "chance: 1 all, 0 chance) and flicker (the second modality's frame-to-frame change, 0-255 levels, where "
            "the first's ground truth stands still):",
            "",
            *_table(["observed → scored", "metric", name, *columns, "ground truth"], aligned),
        ]
    completed = _completion_rows(data, mode, ordered)
    if completed:
        lines += [
            "",
            "Modality completion (every frame of one modality given, the other sampled for the same frames; "
            "forecast columns: the joint model from the context frames alone):",
            "",
            *_table(
                [
                    "given → completed",
                    "metric",
                    "completion",
                    "forecast, given only observed",
                    "forecast, all observed",
                    "single",
                    "copy-last",
                    "autoencoder",
                ],
                completed,
            ),
        ]
    return "\n".join(lines) + "\n"
