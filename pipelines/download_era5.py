"""Flow `download_era5`: ERA5-Land month by month through cdsapi into `<paths.raw>/<dataset>/`.

One task per month, cached by its request and its file's stamp (size, modification time; the
client factory is not part of the key), retried with exponential backoff on transient errors
(never on missing credentials). The output folder is a DVC `persist: true` output, so months
already there survive a rerun: a month whose file answers its request and validates is kept, a
missing or stale one is downloaded. A cache hit never vouches for a file that is damaged now:
every run checks each month's header and md5 (`era5.stale_reason`: sidecars, variables, time
steps, grid, and the md5 recorded when the file was last checked in full; no data values are
decoded) and refreshes the task when that fails, so the task's full check
(`era5.download_month`) runs again and fetches the month again if the file changed: bit rot
that keeps the header, size and modification time is caught by the md5. A month that
fails does not stop the others; the flow fails at the end naming the failed months, and the next
run fetches only those. Nothing is pruned: months removed from params stay on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from prefect import flow, get_run_logger, task
from prefect.tasks import exponential_backoff

from pipelines.caching import RESULT_SERIALIZER, item_policy
from pipelines.reporting import publish_table
from syncvp.config import Era5Source, PathsConfig
from syncvp.data import era5
from syncvp.data.synthetic_era5 import month_filename


def _retryable(task, task_run, state) -> bool:
    """Retry transient failures (network, server, bad file), not missing credentials."""
    return not isinstance(state.result(raise_on_failure=False), era5.Era5CredentialsError)


@task(
    cache_policy=item_policy(exclude=("client_factory",), stamped=("target",)),
    result_serializer=RESULT_SERIALIZER,
    task_run_name="era5-{month}",
    retry_condition_fn=_retryable,
)
def download_month(month: str, request: dict, target: Path, client_factory: Callable | None) -> dict:
    report = era5.download_month(request, target, client_factory or era5.cds_client_factory())
    get_run_logger().info(f"{month}: {report['status']} {target.name}")
    return report


@flow(name="download_era5", log_prints=True)
def download_era5(dataset: str, source: Era5Source, paths: PathsConfig, client_factory: Callable | None = None) -> str:
    """Download every month of an `era5` source that is missing or stale.

    Args:
        client_factory: makes the cdsapi client (tests pass a stand-in); default: cdsapi with
            short internal retries, credentials from ~/.cdsapirc or CDSAPI_URL / CDSAPI_KEY.
    """
    logger = get_run_logger()
    out = paths.raw_dir(dataset)
    out.mkdir(parents=True, exist_ok=True)
    for stale in era5.remove_partial(out):
        logger.info(f"removed a partial download left by an interrupted run: {stale.name}")
    month_task = download_month.with_options(
        retries=source.retries, retry_delay_seconds=exponential_backoff(source.retry_delay_s)
    )
    rows, failed = [], {}
    months = list(source.months)
    for first in range(0, len(months), source.workers):
        futures = {}
        for month in months[first : first + source.workers]:
            target, request = out / month_filename(month), era5.month_request(source, month)
            stale = era5.stale_reason(target, request)
            if stale is not None and target.exists():
                logger.warning(f"{month}: {stale}: checking it in full, and fetching it again if that fails")
            futures[month] = month_task.with_options(refresh_cache=stale is not None).submit(
                month, request, target, client_factory
            )
        for month, future in futures.items():
            future.wait()
            if future.state.is_failed():
                error = future.state.result(raise_on_failure=False)
                failed[month] = f"{type(error).__name__}: {error}"
                rows.append({"month": month, "status": "failed", "file": failed[month]})
            else:
                report = future.result()
                status = "cached" if future.state.name == "Cached" else report["status"]
                rows.append({"month": month, "status": status, "file": Path(report["file"]).name})
    publish_table(f"{dataset}-download-era5", rows, f"ERA5-Land months of {dataset!r}")
    if failed:
        by_error: dict[str, list[str]] = {}
        for month, error in failed.items():
            by_error.setdefault(error, []).append(month)
        lines = "\n".join(f"  {', '.join(ms)}: {error}" for error, ms in by_error.items())
        raise era5.Era5Error(
            f"{len(failed)} of {len(months)} months failed (finished months stay in {out}; a rerun "
            f"fetches only the missing ones):\n{lines}"
        )
    return str(out)
