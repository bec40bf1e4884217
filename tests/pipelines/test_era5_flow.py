"""The `download_era5` flow under the Prefect harness: resume after a failure mid-year, retries
on transient errors, truncated downloads never cached, credentials errors not retried."""

from __future__ import annotations

import dataclasses

import pytest

from syncvp.data import era5
from syncvp.data.synthetic_era5 import month_filename
from tests.data.cds_standin import StandInCDS
from tests.data.test_era5 import MONTHS, era5_source

pytestmark = pytest.mark.slow


def month_files(folder) -> list[str]:
    return sorted(p.name for p in folder.glob("era5-land_*.nc"))


def test_resume_after_a_failure_in_the_middle_of_a_year(tiny_params, prefect_harness):
    from pipelines.era5 import download_era5

    source, paths = era5_source(retries=1), tiny_params.paths
    out = paths.raw_dir("era5")
    broken = StandInCDS(broken={"2020-07"})
    with pytest.raises(era5.Era5Error, match=r"1 of 12 months failed.*\n  2020-07: ConnectionError"):
        download_era5("era5", source, paths, client_factory=broken)
    assert month_files(out) == [month_filename(m) for m in MONTHS if m != "2020-07"], \
        "months before (and after) the failing one are kept"
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
    assert era5.check_month_file(out / month_filename("2020-05"), era5.month_request(narrower, "2020-05"))["time_steps"] == 62


def test_transient_errors_are_retried_with_backoff(tiny_params, prefect_harness):
    from pipelines.era5 import download_era5

    months = ("2021-01", "2021-02", "2021-03")
    source = era5_source(months=months, retries=2, workers=2)
    client = StandInCDS(transient={"2021-02": 2})
    download_era5("era5", source, tiny_params.paths, client_factory=client)
    assert sorted(client.months()) == ["2021-01", "2021-02", "2021-02", "2021-02", "2021-03"]
    assert month_files(tiny_params.paths.raw_dir("era5")) == [month_filename(m) for m in months]


def test_truncated_download_is_not_cached(tiny_params, prefect_harness):
    from pipelines.era5 import download_era5

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
    from pipelines.era5 import download_era5

    source = era5_source(months=("2023-01", "2023-02", "2023-03"), retries=3)
    no_rc = StandInCDS(constructor_error=Exception("Missing/incomplete configuration file: /root/.cdsapirc"))
    with pytest.raises(era5.Era5Error, match="Era5CredentialsError: no CDS credentials"):
        download_era5("era5", source, tiny_params.paths, client_factory=no_rc)
    assert no_rc.clients == 3, "one attempt per month, no retry"
