"""`<eval>/<ds>/report.html`: one self-contained page per evaluation, written after the tables,
plots and samples it shows (`write_outputs`).

It holds, in this order: the headline table (`tables/compare.md` as HTML tables), the per-frame
curves of every `plots/<mode>-<modality>-<metric>.tsv` (one PNG per mode drawn with matplotlib:
the model's settings solid, the references dashed), the sample GIFs (`samples/<setting>.gif`) and
the params that produced it (the dataset's section, `evaluate` and `sampling`, as YAML). Every
image is embedded as a base64 data URI: the page needs no network and no file beside it, so it
can be mailed or attached as it is. With N >= 2 trajectories the pictures of `uncertainty/` (spread
maps, spread against skill per lead frame) follow the samples.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from collections import defaultdict
from pathlib import Path

import yaml

from syncvp.config.loader import to_plain
from syncvp.evaluation.plan import EvaluationPlan

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1350px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #bbb; padding: 2px 7px; text-align: right; }
th { background: #eee; } td:first-child, td:nth-child(2) { text-align: left; }
figure { display: inline-block; margin: 0.4em; vertical-align: top; }
figcaption { font-size: 0.85em; font-weight: bold; }
img { max-width: 100%; } pre { background: #f6f6f6; padding: 0.6em; font-size: 0.8em; }
"""


def markdown_to_html(markdown: str) -> str:
    """The subset of Markdown `compare.md` uses: `#` headings, pipe tables, paragraphs."""
    out, table = [], []

    def flush():
        if table:
            head, *body = [[html.escape(c.strip()) for c in row.strip().strip("|").split("|")] for row in table]
            body = [r for r in body if not all(re.fullmatch(r":?-+:?", c) for c in r)]
            out.append(
                "<table><tr>"
                + "".join(f"<th>{c}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body)
                + "</table>"
            )
            table.clear()

    for line in markdown.splitlines():
        if line.lstrip().startswith("|"):
            table.append(line)
            continue
        flush()
        if m := re.match(r"(#{1,6})\s+(.*)", line):
            level = min(len(m.group(1)) + 1, 6)  # the page's own title is the only h1
            out.append(f"<h{level}>{html.escape(m.group(2))}</h{level}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line.strip())}</p>")
    flush()
    return "\n".join(out)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def read_curves(plots: Path) -> dict[str, dict[str, dict[str, list[tuple[int, float]]]]]:
    """{mode: {"<modality> <metric>": {setting: [(frame, value)]}}} from `plots/*.tsv` (empty cells skipped)."""
    out: dict = defaultdict(dict)
    for path in sorted(plots.glob("*.tsv")):
        mode, modality, metric = path.stem.split("-", 2)
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
        names = rows[0][1:]
        out[mode][f"{modality} {metric}"] = {
            n: [(int(r[0]), float(r[k + 1])) for r in rows[1:] if r[k + 1] != ""] for k, n in enumerate(names)
        }
    return dict(out)


def curves_png(title: str, panels: dict[str, dict[str, list[tuple[int, float]]]], model: set[str]) -> bytes:
    """One PNG: a panel per modality and metric, a line per setting (`model` settings solid)."""
    from matplotlib.figure import Figure

    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.6 * cols, 2.6 * rows + 1.1), dpi=80)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    colours = {s: f"C{k % 10}" for k, s in enumerate(dict.fromkeys(s for series in panels.values() for s in series))}
    lines = {}
    for ax, (name, series) in zip(axes.flat, panels.items()):
        for setting, points in series.items():
            style = "-" if setting in model else "--"
            (lines[setting],) = ax.plot(*zip(*points), style, color=colours[setting], linewidth=1.3)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("predicted frame", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.legend(list(lines.values()), list(lines), loc="lower center", ncols=min(len(lines), 6), fontsize=8)
    fig.subplots_adjust(
        left=0.05,
        right=0.98,
        top=1 - 0.45 / fig.get_figheight(),
        bottom=0.9 / fig.get_figheight(),
        hspace=0.45,
        wspace=0.25,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def params_yaml(plan: EvaluationPlan) -> str:
    """The params that produced the evaluation: the dataset's section, `evaluate`, `sampling`."""
    sections = {
        "datasets": {plan.dataset: to_plain(plan.config)},
        "evaluate": to_plain(plan.evaluate),
        "sampling": to_plain(plan.sampling),
    }
    return yaml.safe_dump(sections, sort_keys=False, allow_unicode=True)


def report_html(
    plan: EvaluationPlan, compare_md: str, plots: Path, samples: Path, uncertainty: Path | None = None
) -> str:
    """The page, from the written tables/compare.md, plots/, samples/ and uncertainty/ (see the module doc)."""
    model = {s.label for s in plan.settings}
    title = f"{plan.dataset}: evaluation of the {plan.evaluate.model} model"
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(plan.batches)} batch(es), {plan.batches[-1][1]} test videos ({html.escape(plan.evaluate.split)} split); "
        f"settings {html.escape(', '.join(plan.labels))}. Solid lines: the model; dashed: the references.</p>",
    ]
    if plan.metric_plan.skipped:
        skipped = "; ".join(f"{k}: {v}" for k, v in plan.metric_plan.skipped.items())
        parts.append(f"<p>Skipped metrics: {html.escape(skipped)}</p>")
    parts += ["<h2>Headline table (tables/compare.md)</h2>", markdown_to_html(compare_md)]
    parts.append("<h2>Per-frame curves (plots/*.tsv)</h2>")
    for mode, panels in read_curves(plots).items():
        png = curves_png(f"{plan.dataset}, {mode} mode", panels, model)
        parts.append(
            f'<figure><figcaption>{html.escape(mode)} mode</figcaption><img src="{data_uri(png, "image/png")}" alt="{html.escape(mode)} curves"></figure>'
        )
    parts.append(
        "<h2>Samples (samples/*.gif)</h2><p>First trajectory of each setting; the title band turns red on the "
        "predicted frames; a modality the setting does not observe has its context blanked.</p>"
    )
    for label in plan.labels:
        gif = samples / f"{label}.gif"
        if gif.is_file():
            parts.append(
                f"<figure><figcaption>{html.escape(label)}</figcaption>"
                f'<img src="{data_uri(gif.read_bytes(), "image/gif")}" alt="{html.escape(label)} samples"></figure>'
            )
    pictures = sorted(uncertainty.glob("*.png")) if uncertainty is not None and uncertainty.is_dir() else []
    if pictures:
        parts.append(
            f"<h2>Uncertainty (uncertainty/*.png)</h2><p>Spread over the {plan.evaluate.trajectories} trajectories "
            "per pixel and lead frame (sample videos), and spread against skill per lead frame.</p>"
        )
    for png in pictures:
        parts.append(
            f"<figure><figcaption>{html.escape(png.stem)}</figcaption>"
            f'<img src="{data_uri(png.read_bytes(), "image/png")}" alt="{html.escape(png.stem)}"></figure>'
        )
    parts += ["<h2>Params</h2>", f"<pre>{html.escape(params_yaml(plan))}</pre>"]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )
