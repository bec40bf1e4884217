"""Callbacks run by `fit` after every step: metric history, periodic evaluation, checkpoints.

Histories live in `state.extra["history"][name]` as lists of {"step": int, metric: float}, and
the open averaging windows in `state.extra["windows"][name]`, so both are saved in checkpoints and a
resumed run continues the same curves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from syncvp.io import checkpoint as ckpt_io
from syncvp.progress import HELD_OUT, ProgressEvent, ProgressFn, no_progress
from syncvp.training import distributed
from syncvp.training.state import TrainState


def due(step: int, every: int, total: int) -> bool:
    """Whether a periodic action runs after `step`: every `every` steps and at the last step
    (`every` = 0: only at the last step)."""
    return step == total or (every > 0 and step % every == 0)


def history(state: TrainState, name: str) -> list[dict]:
    return state.extra.setdefault("history", {}).setdefault(name, [])


class MetricHistory:
    """Averages the step metrics over each `every`-step window and appends them to a history."""

    def __init__(
        self,
        every: int,
        total: int,
        name: str = "train",
        progress: ProgressFn = no_progress,
        task: str = "train",
        message: str = "",
    ):
        self.every, self.total, self.name, self.progress, self.task = every, total, name, progress, task
        self.message = message

    def __call__(self, state: TrainState, metrics: dict[str, float]) -> None:
        # the open window lives in the checkpointed state: a run resumed inside a window averages
        # the same steps, in the same order, as an uninterrupted one
        window = state.extra.setdefault("windows", {}).setdefault(self.name, {"sums": {}, "count": 0})
        sums = window["sums"]
        for k, v in metrics.items():
            sums[k] = sums.get(k, 0.0) + v
        window["count"] += 1
        if due(state.step, self.every, self.total):
            row = {k: v / window["count"] for k, v in sums.items()}
            history(state, self.name).append({"step": state.step, **row})
            state.extra["windows"][self.name] = {"sums": {}, "count": 0}
            self.progress(ProgressEvent(self.task, state.step, self.total, row, message=self.message))


class Evaluate:
    """Calls `evaluate()` (-> metrics) periodically and records the result."""

    def __init__(
        self,
        evaluate: Callable[[], dict[str, float]],
        every: int,
        total: int,
        name: str = "eval",
        progress: ProgressFn = no_progress,
        task: str = "eval",
    ):
        self.evaluate, self.every, self.total, self.name = evaluate, every, total, name
        self.progress, self.task = progress, task

    def record(self, state: TrainState) -> dict[str, float]:
        """Evaluate now and append the result at the current step."""
        row = self.evaluate()
        history(state, self.name).append({"step": state.step, **row})
        self.progress(ProgressEvent(self.task, state.step, self.total, row, message=HELD_OUT))
        return row

    def __call__(self, state: TrainState, metrics: dict[str, float]) -> None:
        if due(state.step, self.every, self.total):
            self.record(state)


class Checkpoint:
    """Writes the resumable checkpoint (atomically) periodically and at the last step.

    Distributed, every rank takes part (the checkpoint gathers each rank's RNG states), only the
    main process writes (`is_main`; None = rank 0), and all ranks wait until the file is complete,
    so that any rank may read it afterwards.
    """

    def __init__(self, path: str | Path, config_hash: str, every: int, total: int, is_main: bool | None = None):
        self.path, self.config_hash, self.every, self.total, self.is_main = (
            Path(path),
            config_hash,
            every,
            total,
            is_main,
        )

    def __call__(self, state: TrainState, metrics: dict[str, float]) -> None:
        if not due(state.step, self.every, self.total):
            return
        ckpt = state.checkpoint(self.config_hash)
        if distributed.is_main() if self.is_main is None else self.is_main:
            ckpt_io.save_checkpoint(self.path, ckpt)
        distributed.barrier()
