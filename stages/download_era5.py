"""DVC stage `download_era5@<dataset>`: ERA5-Land months through cdsapi (needs CDS credentials)."""

import sys

from stages._entry import StageSpec, run


def flow():
    """The stage's Prefect flow (imported only once the params are checked: it loads Prefect)."""
    from pipelines.download_era5 import download_era5

    return download_era5


SPEC = StageSpec(
    name="download_era5",
    fanout="download_era5",
    sections=lambda ds: (f"datasets.{ds}.source", "paths"),
    flow=flow,
    arguments=lambda p, ds: {"dataset": ds, "source": p(f"datasets.{ds}.source"), "paths": p("paths")},
)

if __name__ == "__main__":
    sys.exit(run(SPEC))
