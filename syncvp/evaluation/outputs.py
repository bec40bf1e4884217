"""From per-batch files to the stage outputs under `<eval>/<ds>/`:

- `metrics.json` (DVC metrics, numbers only): {dataset: {setting: {mode: {modality: {metric | metric_mean}}}}};
  settings: the model's (`all`, `<modality>`, noise variants) and
  the references (`single-<condition>`, `copy_last`, `autoencoder`, `ground_truth`; see
  `syncvp.evaluation.plan`); `alignment` sits under the modality key "<a>+<b>";
- `skipped.json`: {metric: why it was not computed} (a plain output: DVC would show each reason as a metric);
- `tables/summary.csv`, `tables/videos.csv` (one row per video), `tables/curves.csv`;
- `tables/compare.md`: the model next to the references, standard mode (`syncvp.evaluation.compare`);
- `plots/<mode>-<modality>-<metric>.tsv` (DVC plots; for `spread` the ratio only): column `frame` (1 = first predicted frame)
  and one column per setting, baseline included (best-of-N curves, or mean-over-N with reduce mean).
  The `PLOT_SERIES` columns are always there (dvc.yaml's top-level `plots:` draws them whatever
  `evaluate.conditions` / `evaluate.baselines` say): a setting that was not evaluated is "nan",
  which DVC's Vega-Lite templates leave out of the line;
- `report.html`: one self-contained page: the table, the curves, the sample GIFs and the params
  (`syncvp.evaluation.report_page`);
- `uncertainty/`: spread maps and the spread-skill figure of N >= 2 trajectories
  (`syncvp.evaluation.uncertainty`);
- `samples/<setting>.png` and `.gif`: labelled grids (`write_samples`): per sample video and
  modality, a ground-truth row above a prediction row (first trajectory), the end of the context
  marked, an unobserved modality's context left blank. Fields are drawn in physical units over the
  store's [norm_min, norm_max] with invalid points gray and a colour bar; class maps in a fixed palette.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from syncvp.config.evaluate import ALL
from syncvp.config.layout import COMPARE, EvaluationFiles
from syncvp.data.transforms import model_to_field, model_to_image
from syncvp.evaluation.batch import load_clips, protocols
from syncvp.evaluation.compare import compare_markdown
from syncvp.evaluation.plan import AUTOENCODER, BASELINE, FLOW, SINGLE, EvaluationPlan
from syncvp.evaluation.report_page import report_html
from syncvp.evaluation.uncertainty import write_spread_maps, write_spread_skill
from syncvp.figures import ColourBar, Legend, display, display_scale, labelled_grid, labelled_movie, save_movie
from syncvp.io.atomic import atomic_dir, atomic_path, write_json
from syncvp.metrics.protocol import BatchResult
from syncvp.metrics.report import EvalReport, Row, summarise, write_rows
from syncvp.viz import save_png

# The curves dvc.yaml's top-level plots draw: the joint model with every modality observed, the
# stage-1 models in the same condition, and the three references.
PLOT_SERIES = (ALL, f"{SINGLE}-{ALL}", BASELINE, FLOW, AUTOENCODER)
MISSING = "nan"  # a PLOT_SERIES column of a setting that was not evaluated
# the spread-skill ratio's two parts get no TSV: they are in tables/curves.csv and uncertainty/*-spread.png
UNPLOTTED = frozenset({"spread_std", "rmse_ensemble_mean"})


def labels(plan: EvaluationPlan) -> tuple[str, ...]:
    """Every evaluated setting's label: the model's settings, then the references."""
    return plan.labels


def summarise_plan(plan: EvaluationPlan) -> EvalReport:
    """Reduce every setting's batch files (all must exist) in every configured mode."""
    units = {m: u for m, (_, _, u) in plan.fields.items()}
    report = EvalReport(skipped=dict(plan.metric_plan.skipped))
    real16 = None
    if "fvd16" in plan.metric_plan.available:
        from syncvp.evaluation.fvd16 import real_features

        real16, _ = real_features(plan)
    for label in labels(plan):
        results = [BatchResult.load(plan.batch_file(label, i)) for i in range(len(plan.batches))]
        for protocol in protocols(plan):
            report = report.merge(
                summarise(
                    results,
                    protocol,
                    dataset=plan.dataset,
                    condition=label,
                    units=units,
                    skipped=plan.metric_plan.skipped,
                    real16=real16,
                )
            )
    return report


def compare_table(plan: EvaluationPlan, report: EvalReport) -> str:
    """tables/compare.md's Markdown: the model next to the references (`syncvp.evaluation.compare`)."""
    return compare_markdown(report.metrics_json(), plan.dataset, plan.evaluate.model, plan.modalities)


def table_rows(report: EvalReport) -> list[dict]:
    """The summary rows as plain dicts (the Prefect table artifact), in metrics.json's order."""
    return [
        {
            "setting": r.condition,
            "mode": r.mode,
            "modality": r.modality,
            "metric": r.metric,
            "trajectories": r.trajectories,
            "value": r.value,
            "scale": r.scale,
            "units": r.units,
        }
        for r in report.rows
    ]


def write_plots(directory: Path, curves: list[Row]) -> None:
    """One TSV per (mode, modality, metric) curve in `directory`: `frame`, then one column per setting
    and the `PLOT_SERIES` columns (each file written atomically)."""
    series: dict[tuple[str, str, str], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    best = {(r.condition, r.mode, r.modality, r.metric) for r in curves if r.trajectories == "best"}
    for r in curves:
        if r.trajectories == "mean" and (r.condition, r.mode, r.modality, r.metric) in best:
            continue  # one curve per setting: best-of-N where computed
        if r.metric in UNPLOTTED:
            continue
        series[(r.mode, r.modality, r.metric)][r.condition][r.frame] = r.value
    for (mode, modality, metric), by_label in series.items():
        names = list(by_label) + [n for n in PLOT_SERIES if n not in by_label]
        frames = sorted({f for v in by_label.values() for f in v})
        with atomic_path(directory / plot_name(mode, modality, metric)) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t")
            writer.writerow(["frame", *names])
            writer.writerows([[f, *(by_label.get(n, {}).get(f, MISSING) for n in names)] for f in frames])


def plot_name(mode: str, modality: str, metric: str) -> str:
    """`<mode>-<modality>-<metric>.tsv`: one per-frame curve file under plots/."""
    return f"{mode}-{modality}-{metric}.tsv"


def _display(plan: EvaluationPlan, modality: str, video: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """Model-space [C, T, H, W] -> uint8 [T, H, W, 3] (fields in physical units, class maps in `PALETTE`)."""
    frames = video.transpose(1, 2, 3, 0)  # [T, H, W, C]
    if plan.kinds[modality] == "image":
        return display(model_to_image(frames, "round"), classes=len(plan.classes.get(modality, ())))
    lo, hi, _ = plan.fields[modality]
    return display(model_to_field(frames, lo, hi), kind="field", lo=lo, hi=hi, valid=valid)


def _key(plan: EvaluationPlan, modality: str, masked: bool) -> ColourBar | Legend | None:
    """A field's colour bar in physical units, a class map's legend, nothing for images."""
    if modality in plan.fields:
        lo, hi, units = plan.fields[modality]
        return ColourBar(lo, hi, units, masked)
    return Legend(plan.classes[modality]) if modality in plan.classes else None


def frame_labels(context: int, frames: int) -> list[str]:
    """Frame indices: -(context - 1) .. 0 for the context, +1 .. for the predicted frames."""
    return [f"{t - context + 1:+d}" if t >= context else str(t - context + 1) for t in range(frames)]


def _sample_videos(plan: EvaluationPlan, label: str) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    for i in range(len(plan.batches)):
        path = plan.sample_file(label, i)
        if path.is_file():
            with np.load(path) as data:
                for m in plan.modalities:
                    parts[m].append(data[m])
    return {m: np.concatenate(v) for m, v in parts.items()}


def write_samples(plan: EvaluationPlan, directory: Path) -> None:
    """samples/<label>.png and .gif (nothing when `evaluate.samples` is 0; none for ground_truth).

    PNG: per video and modality a ground-truth row above a prediction row (first trajectory), one
    column per frame, a red marker column where the context ends; the context of a modality the
    setting does not observe is blank ("not observed"). GIF: one frame per time step, a row per
    video and modality, the columns ground truth | prediction, the step in the title (red band:
    predicted). Fields carry a colour bar in physical units, class maps a legend.
    """
    if plan.evaluate.samples == 0:
        return
    clips, valid = load_clips(plan, 0, min(plan.evaluate.samples, plan.batches[-1][1]))
    tc = plan.config.context_frames
    heads = frame_labels(tc, plan.frames)
    for label in labels(plan):
        pred = _sample_videos(plan, label)
        if not pred:
            continue
        condition = plan.setting(label).condition  # the references have no `present`: they see what `all` sees
        present = plan.modalities if condition == ALL else (condition,)
        rows, names, keys, movie, movie_names = [], [], [], [], []
        for v in range(next(iter(pred.values())).shape[0]):
            mask = None if valid is None else valid[v, 0].numpy()
            for m in plan.modalities:
                gt = _display(plan, m, clips[m][v].numpy(), mask)
                guess = _display(plan, m, np.concatenate([clips[m][v, :, :tc].numpy(), pred[m][v]], axis=1), mask)
                guess = [None if t < tc and m not in present else f for t, f in enumerate(guess)]
                seen = "" if m in present else "(context not observed)"
                rows += [list(gt), guess]
                names += [
                    [f"video {v + 1}: {m}", "ground truth"],
                    [f"video {v + 1}: {m}", "prediction 1", *([seen] if seen else [])],
                ]
                keys += [_key(plan, m, mask is not None)] * 2
                movie.append([list(gt), guess])
                movie_names.append([f"video {v + 1}: {m}", *([seen] if seen else [])])
        observed = f"observed: {', '.join(present)}"
        title = f"{label} ({observed}) | {tc} context frames | red line | predicted frames (first trajectory)"
        save_png(
            directory / f"{label}.png",
            labelled_grid(rows, names, [f"t={h}" for h in heads], display_scale(gt.shape[1]), tc, keys, title),
        )
        steps = [
            f"{label} ({observed}) t = {h} " + ("predicted" if t >= tc else "context") for t, h in enumerate(heads)
        ]
        frames = labelled_movie(
            movie,
            movie_names,
            ["ground truth", "prediction 1"],
            steps,
            display_scale(gt.shape[1]),
            keys[::2],
            [t >= tc for t in range(plan.frames)],
        )
        save_movie(directory / f"{label}.gif", frames)


def write_uncertainty(plan: EvaluationPlan, directory: Path, report: EvalReport) -> None:
    """uncertainty/: spread maps (`<setting>.npz`, `.png`) of the model's settings with N >= 2 and the
    spread-skill figures (`syncvp.evaluation.uncertainty`); empty with one trajectory."""
    units = {m: u for m, (_, _, u) in plan.fields.items()}
    files = {label: [plan.sample_file(label, i) for i in range(len(plan.batches))] for label in labels(plan)}
    write_spread_maps(directory, files, units, plan.evaluate.trajectories)
    write_spread_skill(directory, report.curves)


def write_outputs(plan: EvaluationPlan, report: EvalReport) -> Path:
    """Tables, plots, samples, report.html, skipped.json, then metrics.json (last, so it only exists when the rest does)."""
    out = EvaluationFiles(plan.out_dir)
    with atomic_dir(out.tables) as tmp:
        for name, rows in (("summary", report.rows), ("videos", report.videos), ("curves", report.curves)):
            write_rows(tmp / f"{name}.csv", rows)
        (tmp / COMPARE).write_text(compare_table(plan, report))
    with atomic_dir(out.plots) as tmp:
        write_plots(tmp, report.curves)
    with atomic_dir(out.samples) as tmp:
        write_samples(plan, tmp)
    with atomic_dir(out.uncertainty) as tmp:
        write_uncertainty(plan, tmp, report)
    page = report_html(plan, out.table(COMPARE).read_text(), out.plots, out.samples, out.uncertainty)
    with atomic_path(out.report) as tmp:
        tmp.write_text(page, encoding="utf-8")
    write_json(out.skipped, report.skipped_json())
    return write_json(out.metrics, report.metrics_json())
