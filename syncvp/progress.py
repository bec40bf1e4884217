"""How the library reports progress without knowing about Prefect (or anything else).

Long-running library functions take a `progress` callback; the caller decides what to do with
the events (a Prefect flow logs them and updates a progress artifact; tests collect them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report.

    Attributes:
        task: what is progressing ("render test", "train", ...).
        done: units completed so far.
        total: total units (None if unknown).
        metrics: current numbers worth showing (loss, PSNR, ...).
        message: an optional human-readable line.
    """

    task: str
    done: int
    total: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""

    @property
    def fraction(self) -> float | None:
        return None if not self.total else self.done / self.total


class ProgressCallback(Protocol):
    def __call__(self, event: ProgressEvent) -> Any: ...


CURVE = "curve"
"""`ProgressEvent.message` of an event that carries one point of a step-wise training curve (its
`done` is the step): the flow layer logs these (pipelines/live.py)."""
HELD_OUT = "held-out"
"""`ProgressEvent.message` of a held-out evaluation's result (a curve point too, where a unit plots it)."""


def no_progress(event: ProgressEvent) -> None:
    """The default callback: ignore events."""


ProgressFn = Callable[[ProgressEvent], Any]
