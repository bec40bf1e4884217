"""What the data flows share about their output folders: a killed run's temporary siblings go at
the start of the next run (`remove_leftovers`)."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger

from syncvp.io.atomic import remove_stale


def remove_leftovers(final: Path) -> None:
    """Delete the temporary siblings of `final` that a killed run of this stage left behind."""
    removed = remove_stale(final)
    if removed:
        get_run_logger().warning(
            f"removed what a killed run left in {final.parent}: {', '.join(p.name for p in removed)}"
        )
