"""Step-wise training curves with DVCLive: the flow layer's side of the library's progress events.

The library (syncvp/) knows neither Prefect nor DVCLive: its training loops emit `ProgressEvent`s,
and a unit's `curve_point(event)` says which curve values an event carries. `LiveCurves` is the
callback the training flows add to their progress: it logs those values with `dvclive.Live` into
`<models>/<unit>/dvclive/`, one `plots/metrics/<name>.tsv` per curve (columns step, <name>) and
`metrics.json` (the latest value of every curve and its step), rewritten after every logged step,
so that `dvc exp show` and `dvc metrics show` follow a running stage.

Exactness after a kill. A resumed run replays the steps after its last checkpoint: before a value
is logged at step s, the rows of that curve at steps >= s are dropped (DVCLive's `resume=True`
only appends). And the files a stage leaves are never the live ones: once training has finished,
`rewrite` writes the folder afresh from the checkpointed history (`curve_series` of the unit), so
an interrupted-and-resumed run ends with the same bytes as an uninterrupted one (DVC also deletes
these files, non-persistent outputs, before it reruns a stage). The final `metrics.json` leaves out
the names the stage's own metrics.json reports (the autoencoder's held-out psnr, ssim, l1), so
that `dvc metrics show` lists each number once: metrics.json holds the final scores, and
dvclive/metrics.json the last step and the training values that metrics.json does not.

No network, nothing but files: no Studio (DVC_STUDIO_OFFLINE), no DVC experiment saved, no
dvc.yaml written (dvc.yaml declares these files), no report, no system monitor, no timestamps.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Collection, Mapping, Sequence

from syncvp.progress import ProgressEvent

Points = Callable[[ProgressEvent], Mapping[str, float]]


def open_live(folder: Path, *, resume: bool):
    """A `dvclive.Live` on `folder` that writes files only (`resume=False` empties it first)."""
    os.environ["DVC_STUDIO_OFFLINE"] = "true"  # never post to DVC Studio, whatever the user's config
    from dvclive import Live

    return Live(dir=str(folder), resume=resume, report=None, save_dvc_exp=False, dvcyaml=None, monitor_system=False)


def write_summary(live, leave_out: Collection[str] = ()) -> None:
    """`metrics.json` (numbers only, as DVC metrics must be): the latest value of every curve, by
    name, then "step". A non-finite value (DVCLive logs NaN / inf as a string) is left out of it,
    and so are the names in `leave_out`."""
    live.summary = {
        k: v for k, v in sorted(live.summary.items()) if k != "step" and k not in leave_out and not isinstance(v, str)
    }
    live.make_summary()


def drop_from(path: Path, step: int) -> None:
    """Remove the rows of a DVCLive metric file at steps >= `step` (a resumed run logs them again)."""
    if not path.exists():
        return
    header, *rows = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [r for r in rows if int(r.split("\t", 1)[0]) < step]
    if len(kept) < len(rows):
        path.write_text(header + "".join(kept), encoding="utf-8")


class LiveCurves:
    """A progress callback: the curve values `points(event)` picks from an event, logged at the
    event's step (`event.done`) to the DVCLive folder `folder`."""

    def __init__(self, folder: str | Path, points: Points):
        self.folder, self.points = Path(folder), points
        self._live = None

    def metric_file(self, name: str) -> Path:
        return self.folder / "plots" / "metrics" / f"{name}.tsv"

    def __call__(self, event: ProgressEvent) -> None:
        values = self.points(event)
        if not values:
            return
        if self._live is None:
            self._live = open_live(self.folder, resume=True)
        for name, value in values.items():
            drop_from(self.metric_file(name), event.done)
            self._live.step = event.done
            self._live.log_metric(name, float(value))
        write_summary(self._live)  # metrics.json: what `dvc exp show` reads while the stage runs

    def rewrite(self, series: Mapping[str, Sequence[tuple[int, float]]], leave_out: Collection[str] = ()) -> None:
        """Write the folder afresh from `{curve: [(step, value), ...]}` (the finished run's history),
        step by step in increasing order, then its `metrics.json` (the last step's values, less the
        names in `leave_out`: those the stage's own metrics.json reports, so that `dvc metrics
        show` lists no name twice for a unit)."""
        live = open_live(self.folder, resume=False)
        for step in sorted({s for points in series.values() for s, _ in points}):
            live.step = step
            for name, points in series.items():
                for s, value in points:
                    if s == step:
                        live.log_metric(name, float(value))
        write_summary(live, leave_out)
        self._live = None
