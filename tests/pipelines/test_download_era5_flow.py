"""The `download_era5` flow under the Prefect harness: resume after a failure mid-year, retries
on transient errors, truncated downloads never cached, months damaged after their download
fetched again, credentials errors not retried."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import xarray as xr

from syncvp.data import era5
from syncvp.data.synthetic_era5 import month_filename
from tests.data.cds_standin import StandInCDS
from tests.data.test_era5 import MONTHS, era5_source

pytestmark = pytest.mark.slow


def month_files(folder) -> list[str]:
    return sorted(p.name for p in folder.glob("era5-land_*.nc"))


def test_resume_after_a_failure_in_the_middle_of_a_year(tiny_params, prefect_harness):
    from pipelines.download_era5 import download_era5

    source, paths = era5_source(retries=1), tiny_params.paths
    out = paths.raw_dir("era5")
    broken = StandInCDS(broken={"2020-07"})
    with pytest.raises(era5.Era5Error, match=r"1 of 12 months failed.*\n  2020-07: ConnectionError"):
        download_era5("era5", source, paths, client_factory=broken)
    assert month_files(out) == [month_filename(m) for m in MONTHS if m != "2020-07"], (
        "months before (and after) the failing one are kept"
    )
    assert broken.months().count("2020-07") == 2, "the failing month was retried once"
    healthy = StandInCDS()
    download_era5("era5", source, paths, client_factory=healthy)
    assert healthy.months() == ["2020-07"], "the rerun downloads only the missing month"
    assert month_files(out) == [month_filename(m) for m in MONTHS]
    again = StandInCDS()
    download_era5("era5", source, paths, client_factory=again)
    assert again.calls == [] and again.clients == 0
    (out / month_filename("2020-02")).unlink()
    download_era5("era5", source, paths, client_factory=again)
    assert again.months() == ["2020-02"], "a deleted month is fetched again despite its cached task"
    narrower = dataclasses.replace(source, hours=(0, 12))
    download_era5("era5", narrower, paths, client_factory=again)
    assert again.months()[1:] == list(MONTHS), "a changed request replaces every month"
    assert (
        era5.check_month_file(out / month_filename("2020-05"), era5.month_request(narrower, "2020-05"))["time_steps"]
        == 62
    )


def test_transient_errors_are_retried_with_backoff(tiny_params, prefect_harness):
    from pipelines.download_era5 import download_era5

    months = ("2021-01", "2021-02", "2021-03")
    source = era5_source(months=months, retries=2, workers=2)
    client = StandInCDS(transient={"2021-02": 2})
    download_era5("era5", source, tiny_params.paths, client_factory=client)
    assert sorted(client.months()) == ["2021-01", "2021-02", "2021-02", "2021-02", "2021-03"]
    assert month_files(tiny_params.paths.raw_dir("era5")) == [month_filename(m) for m in months]


def test_truncated_download_is_not_cached(tiny_params, prefect_harness):
    from pipelines.download_era5 import download_era5

    source, paths = era5_source(months=("2022-01", "2022-02", "2022-03"), retries=1), tiny_params.paths
    truncating = StandInCDS(truncate=True)
    with pytest.raises(era5.Era5Error, match="Era5FileError"):
        download_era5("era5", source, paths, client_factory=truncating)
    assert len(truncating.calls) == 6 and month_files(paths.raw_dir("era5")) == []
    assert [p.name for p in paths.raw_dir("era5").iterdir()] == []
    healthy = StandInCDS()
    download_era5("era5", source, paths, client_factory=healthy)
    assert healthy.months() == list(source.months) and len(month_files(paths.raw_dir("era5"))) == 3


def test_missing_credentials_are_not_retried(tiny_params, prefect_harness):
    from pipelines.download_era5 import download_era5

    source = era5_source(months=("2023-01", "2023-02", "2023-03"), retries=3)
    no_rc = StandInCDS(constructor_error=Exception("Missing/incomplete configuration file: /root/.cdsapirc"))
    with pytest.raises(era5.Era5Error, match="Era5CredentialsError: no CDS credentials"):
        download_era5("era5", source, tiny_params.paths, client_factory=no_rc)
    assert no_rc.clients == 3, "one attempt per month, no retry"


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:4000])


def overwrite_header_keeping_size_and_time(path) -> None:
    """Bit rot in the file's first bytes: same size, same modification time (same cache key)."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[:64] = bytes(64)
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("damage", [truncate, overwrite_header_keeping_size_and_time])
def test_a_month_damaged_after_its_download_is_fetched_again(tiny_params, prefect_harness, damage):
    """A Prefect cache hit must not vouch for a file that no longer reads."""
    from pipelines.download_era5 import download_era5

    source, paths = era5_source(months=("2024-01", "2024-02", "2024-03"), retries=0), tiny_params.paths
    download_era5("era5", source, paths, client_factory=StandInCDS())
    download_era5("era5", source, paths, client_factory=StandInCDS())  # every month now cached as it is
    target = paths.raw_dir("era5") / month_filename("2024-02")
    request = era5.month_request(source, "2024-02")
    good = era5.open_month(target)
    damage(target)
    with pytest.raises(era5.Era5FileError, match=r"era5-land_2024-02\.nc: cannot be read as netCDF"):
        era5.check_month_file(target, request)
    again = StandInCDS()
    download_era5("era5", source, paths, client_factory=again)
    assert again.months() == ["2024-02"], "the damaged month is fetched again, the intact ones are not"
    assert era5.check_month_file(target, request)["time_steps"] == 29 * 4
    for name in ("t2m", "sp"):
        np.testing.assert_array_equal(era5.open_month(target)[name].values, good[name].values)
    assert [p.name for p in paths.raw_dir("era5").iterdir() if p.name.startswith(".")] == []


def test_a_month_whose_data_was_damaged_after_its_download_is_fetched_again(tiny_params, prefect_harness):
    """A file whose header still reads (variables, times, grid) but whose values were damaged
    (here: `sp` all missing) is caught too: the task's cache key covers the file's content, so
    any change reruns the full check."""
    from pipelines.download_era5 import download_era5

    source, paths = era5_source(months=("2024-04", "2024-05", "2024-06"), retries=0), tiny_params.paths
    download_era5("era5", source, paths, client_factory=StandInCDS())
    download_era5("era5", source, paths, client_factory=StandInCDS())
    target = paths.raw_dir("era5") / month_filename("2024-05")
    request = era5.month_request(source, "2024-05")
    with xr.open_dataset(target, engine="netcdf4") as ds:
        damaged = ds.load()
    damaged["sp"][:] = np.nan
    damaged.to_netcdf(target, engine="netcdf4", format="NETCDF4")
    era5.check_month_header(target, request)  # the cheap check cannot see it
    with pytest.raises(era5.Era5FileError, match=r"era5-land_2024-05\.nc: 'sp' holds no finite value"):
        era5.check_month_file(target, request)
    again = StandInCDS()
    download_era5("era5", source, paths, client_factory=again)
    assert again.months() == ["2024-05"]
    assert era5.check_month_file(target, request)["time_steps"] == 31 * 4


def test_a_valid_cached_month_is_not_fetched_again(tiny_params, prefect_harness):
    from pipelines.download_era5 import download_era5

    source, paths = era5_source(months=("2024-07", "2024-08", "2024-09"), retries=0), tiny_params.paths
    first = StandInCDS()
    download_era5("era5", source, paths, client_factory=first)
    target = paths.raw_dir("era5") / month_filename("2024-08")
    before = target.read_bytes()
    for _ in range(2):  # the first rerun validates the file (new content key), the second is a cache hit
        again = StandInCDS()
        download_era5("era5", source, paths, client_factory=again)
        assert again.calls == [] and again.clients == 0
    assert first.months() == ["2024-07", "2024-08", "2024-09"] and target.read_bytes() == before
