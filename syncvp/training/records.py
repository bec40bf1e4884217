"""What a training run leaves beside its model: a hand-written step-indexed TSV for `dvc plots` (the
diffusion context probe, several columns in one plot; the other curves are DVCLive's, written by
the flow layer, pipelines/live.py), a log-scale PNG of the loss, and the finished-run marker.

The marker (`work/status.json` of a unit) is removed when a run starts and written, after the
resumable checkpoints are deleted, when its outputs are exported: a finished run is never
resumed, and the next run of the stage trains from scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from syncvp.io.atomic import atomic_path, write_json, write_text


def curve_tsv(rows: Iterable[dict], columns: Sequence[str]) -> str:
    """A header of `columns`, then one line per row that has all of them: "step" as an integer,
    every other column with 6 significant digits."""
    lines = ["\t".join(columns)] + [
        "\t".join(str(r[c]) if c == "step" else f"{r[c]:.6g}" for c in columns)
        for r in rows
        if all(c in r for c in columns)
    ]
    return "\n".join(lines) + "\n"


def write_curve(path: Path, rows: Iterable[dict], columns: Sequence[str]) -> None:
    """Write `curve_tsv(rows, columns)` to `path` (atomically)."""
    write_text(path, curve_tsv(rows, columns))


def save_loss_plot(path: Path, rows: list[dict], columns: Sequence[str], title: str) -> None:
    """A log-scale PNG of the loss curve(s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for c in columns:
        ax.plot([r["step"] for r in rows], [r[c] for r in rows], label=c)
    ax.set(xlabel="step", ylabel="training loss", title=title, yscale="log")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def clear_finished(marker: Path) -> None:
    """A run starts: the marker of an earlier finished run goes (this one is not finished)."""
    marker.unlink(missing_ok=True)


def mark_finished(marker: Path, checkpoints: Iterable[Path], meta: dict) -> None:
    """The run is exported: delete its resumable checkpoints, then write `marker` as
    {"finished": true, **meta}."""
    for path in checkpoints:
        path.unlink(missing_ok=True)
    write_json(marker, {"finished": True, **meta})
