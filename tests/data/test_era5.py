"""ERA5-Land download library: per-month requests, validation, atomic writes, both CDS layouts,
zip-wrapped answers, credentials. No network: stand-in clients write CDS-shaped files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from syncvp.config import Era5Processing, Era5Source, MonthSplits
from syncvp.data import era5
from syncvp.data.synthetic_era5 import month_filename
from syncvp.io.digest import file_md5
from tests.data.cds_standin import StandInCDS

MONTHS = tuple(f"2020-{m:02d}" for m in range(1, 13))


def era5_source(months=MONTHS, hours=(0, 6, 12, 18), **changes) -> Era5Source:
    processing = Era5Processing(normalization="train", fixed_range=None, crop=None, resize="area", video_frames=4,
                                stride=4, splits=MonthSplits(train=months[:-2], val=months[-2:-1], test=months[-1:]))
    args = dict(kind="era5", months=months, hours=hours, area=(47.0, 7.0, 46.3, 7.7), step=0.1, retries=2,
                retry_delay_s=0.0, workers=1, processing=processing)
    args.update(changes)
    return Era5Source(**args)


def test_one_request_per_month_with_the_exact_days():
    source = era5_source(months=("2020-02", "2021-02", "2020-12"), hours=(0, 13))
    requests = {m: era5.month_request(source, m) for m in source.months}
    assert requests["2020-02"]["day"] == [f"{d:02d}" for d in range(1, 30)], "leap February has 29 days"
    assert requests["2021-02"]["day"][-1] == "28" and requests["2020-12"]["day"][-1] == "31"
    req = requests["2021-02"]
    assert req == {"variable": ["2m_temperature", "surface_pressure"], "year": "2021", "month": "02",
                   "day": req["day"], "time": ["00:00", "13:00"], "area": [47.0, 7.0, 46.3, 7.7],
                   "grid": [0.1, 0.1], "data_format": "netcdf", "download_format": "unarchived"}
    times = era5.expected_times(req)
    assert len(times) == 28 * 2 and str(times[0])[:16] == "2021-02-01T00:00" and str(times[-1])[:16] == "2021-02-28T13:00"
    assert source.grid == (8, 8)


def test_download_validates_then_keeps_a_current_month(tmp_path):
    source, client = era5_source(), StandInCDS()
    request = era5.month_request(source, "2020-03")
    target = tmp_path / month_filename("2020-03")
    report = era5.download_month(request, target, client)
    assert report["status"] == "downloaded" and report["time_steps"] == 31 * 4 and report["grid"] == [8, 8]
    assert client.calls == [(era5.DATASET, request)]
    assert json.loads(era5.request_file(target).read_text()) == request
    assert era5.download_month(request, target, client)["status"] == "kept"
    assert client.clients == 1, "a current month is not requested again (no client is even made)"
    other = dict(request, time=["00:00", "12:00"])
    assert not era5.is_current(target, other)
    assert era5.download_month(other, target, client)["status"] == "downloaded"
    assert era5.check_month_file(target, other)["time_steps"] == 31 * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["era5-land_2020-03.nc", "era5-land_2020-03.nc.md5",
                                                          "era5-land_2020-03.request.json"]
    assert era5.checksum_file(target).read_text() == f"{file_md5(target)}  era5-land_2020-03.nc\n"   # md5sum's format


def test_truncated_download_is_rejected_and_leaves_nothing(tmp_path):
    request = era5.month_request(era5_source(), "2020-03")
    target = tmp_path / month_filename("2020-03")
    with pytest.raises(era5.Era5FileError, match="cannot be read as netCDF"):
        era5.download_month(request, target, StandInCDS(truncate=True))
    assert list(tmp_path.iterdir()) == []


def test_a_file_with_missing_hours_or_the_wrong_month_is_rejected(tmp_path):
    request = era5.month_request(era5_source(), "2020-03")
    path = tmp_path / "x.nc"
    StandInCDS().retrieve(era5.DATASET, dict(request, time=["00:00", "06:00"]), str(path))
    with pytest.raises(era5.Era5FileError, match="holds 62 time steps, expected 124"):
        era5.check_month_file(path, request)
    StandInCDS().retrieve(era5.DATASET, dict(request, month="04", day=request["day"][:30]), str(path))
    with pytest.raises(era5.Era5FileError, match="missing"):
        era5.check_month_file(path, request)
    StandInCDS().retrieve(era5.DATASET, dict(request, area=[47.0, 7.0, 46.3, 9.0]), str(path))
    with pytest.raises(era5.Era5FileError, match="longitude spans"):
        era5.check_month_file(path, request)
    StandInCDS().retrieve(era5.DATASET, dict(request, area=[47.0, 7.0, 46.3, 7.3]), str(path))
    with pytest.raises(era5.Era5FileError, match=r"x\.nc: longitude spans 7\.\.7\.3, short of 7\.\.7\.7: the file's grid is "
                                                 r"latitude 47\.\.46\.3 by 0\.1 \(8 points\), longitude 7\.\.7\.3 by 0\.1 \(4 points\); "
                                                 r"the requested one \(area \[47\.0, 7\.0, 46\.3, 7\.7\] at step 0\.1\) is "
                                                 r"latitude 47\.\.46\.3 by 0\.1 \(8 points\), longitude 7\.\.7\.7 by 0\.1 \(8 points\)$"):
        era5.check_month_file(path, request)


def test_stale_reason_checks_sidecars_header_and_checksum(tmp_path):
    """The cheap per-run check of a kept month: file, sidecars, header (variables, times, grid)
    and the md5 recorded when it was checked in full (no data value is decoded)."""
    request = era5.month_request(era5_source(), "2020-03")
    target = tmp_path / month_filename("2020-03")
    assert era5.stale_reason(target, request) == "not downloaded yet"
    era5.download_month(request, target, StandInCDS())
    assert era5.stale_reason(target, request) is None
    assert era5.stale_reason(target, dict(request, time=["00:00"])) == f"{era5.request_file(target).name} records another request"
    era5.request_file(target).write_text("{")
    assert "is not valid JSON" in era5.stale_reason(target, request)
    era5.request_file(target).unlink()
    assert era5.stale_reason(target, request) == "era5-land_2020-03.request.json is missing"
    era5.download_month(request, target, StandInCDS())
    era5.checksum_file(target).unlink()   # a month downloaded before checksums were recorded
    assert era5.stale_reason(target, request) == "era5-land_2020-03.nc.md5 is missing or unreadable"
    assert era5.download_month(request, target, StandInCDS(broken={"2020-03"}))["status"] == "kept", \
        "checked in full and kept, not fetched again"
    assert era5.stale_reason(target, request) is None
    rotten = bytearray(target.read_bytes())
    rotten[len(rotten) // 2] ^= 0xFF   # one flipped byte in the data: the header still reads
    target.write_bytes(bytes(rotten))
    assert era5.stale_reason(target, request).startswith(f"{target}: its content changed since it was checked (md5 ")
    assert not era5.is_current(target, request)
    target.write_bytes(target.read_bytes()[:5000])
    assert era5.stale_reason(target, request).startswith(f"{target}: cannot be read as netCDF (OSError")
    assert not era5.is_current(target, request)


@pytest.mark.parametrize("layout, wrap", [("new", None), ("legacy", None), ("new", "zip"), ("new", "zip2"),
                                          ("legacy", "zip2")])
def test_both_layouts_and_zip_wrapped_answers(tmp_path, layout, wrap):
    request = era5.month_request(era5_source(), "2020-02")
    target = tmp_path / month_filename("2020-02")
    era5.download_month(request, target, StandInCDS(layout=layout, wrap=wrap))
    ds = era5.open_month(target)
    assert set(ds.data_vars) == {"t2m", "sp"} and dict(ds.sizes) == {"time": 29 * 4, "latitude": 8, "longitude": 8}
    assert (np.diff(ds.latitude.values) < 0).all()
    plain = tmp_path / "plain.nc"
    StandInCDS(layout=layout).retrieve(era5.DATASET, request, str(plain))
    ref = era5.open_month(plain)
    for name in ("t2m", "sp"):
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_missing_credentials_name_the_fix(tmp_path, monkeypatch):
    for var in ("CDSAPI_URL", "CDSAPI_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "none"))
    with pytest.raises(era5.Era5CredentialsError, match="cdsapirc.*CDSAPI_URL and CDSAPI_KEY"):
        era5.download_month(era5.month_request(era5_source(), "2020-01"), tmp_path / "m.nc", era5.cds_client_factory())
    assert list(tmp_path.iterdir()) == []


def test_real_client_fails_fast_offline_and_never_shows_the_key(tmp_path):
    """cdsapi against a closed loopback port: short internal retries, the key in no message or file."""
    code = (
        "import sys, time; from syncvp.data import era5; from tests.data.test_era5 import era5_source\n"
        "t = time.monotonic()\n"
        "try:\n"
        f"    era5.download_month(era5.month_request(era5_source(), '2020-01'), {str(tmp_path / 'm.nc')!r},\n"
        "                        era5.cds_client_factory(retry_max=1, sleep_max=0.1, timeout=2))\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "print('seconds', time.monotonic() - t)\n")
    env = dict(os.environ, CDSAPI_URL="http://127.0.0.1:9/api", CDSAPI_KEY="marker-secret-0123", HOME=str(tmp_path))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    out = res.stdout + res.stderr
    assert "ConnectionError" in res.stdout and float(res.stdout.split("seconds")[-1]) < 60, out
    assert "marker-secret-0123" not in out
    assert not any("marker-secret-0123" in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def test_partial_downloads_are_removed(tmp_path):
    (tmp_path / ".era5-land_2020-01.nc.tmp-abc").write_text("half")
    (tmp_path / ".unzip-xyz").mkdir()
    (tmp_path / "era5-land_2020-02.nc").write_text("kept")
    removed = era5.remove_partial(tmp_path)
    assert sorted(p.name for p in removed) == [".era5-land_2020-01.nc.tmp-abc", ".unzip-xyz"]
    assert [p.name for p in tmp_path.iterdir()] == ["era5-land_2020-02.nc"]


@pytest.mark.parametrize("layout", ["new", "legacy"])
def test_synthetic_months_pass_the_download_checks(tmp_path, repo_params, layout):
    import dataclasses

    from syncvp.data import synthetic_era5

    source = dataclasses.replace(repo_params.datasets["era5_synthetic"].source, layout=layout, grid=(6, 7))
    path = synthetic_era5.write_month(tmp_path / "m.nc", source.seed, "2020-02", grid=source.grid, step=source.step,
                                      north=source.north, west=source.west, layout=layout)
    request = era5.month_request(source, "2020-02")
    assert request["area"] == pytest.approx([47.0, 7.0, 46.5, 7.6]) and len(request["time"]) == 24
    assert era5.check_month_file(path, request) == {"time_steps": 29 * 24, "grid": [6, 7]}


def test_real_cdsapi_client_downloads_from_a_local_stand_in(tmp_path, monkeypatch):
    """The real cdsapi client (token route, ecmwf-datastores protocol) against a local HTTP
    stand-in of the CDS retrieve API: the request goes out as built, the answer validates, and a
    wrong key fails as an HTTP 401 that does not show the key."""
    from tests.data.cds_http_standin import CDSHTTPStandIn

    monkeypatch.setenv("CDSAPI_RC", str(tmp_path / "no-rc"))
    request = era5.month_request(era5_source(), "2020-02")
    with CDSHTTPStandIn() as server:
        for var, value in server.env().items():
            monkeypatch.setenv(var, value)
        factory = era5.cds_client_factory(retry_max=1, sleep_max=0.1, timeout=10)
        report = era5.download_month(request, tmp_path / month_filename("2020-02"), factory)
        assert report["status"] == "downloaded" and server.requests == [(era5.DATASET, request)]
        assert era5.check_month_file(tmp_path / month_filename("2020-02"), request)["grid"] == [8, 8]
        monkeypatch.setenv("CDSAPI_KEY", "wrong-token-4567")
        with pytest.raises(Exception, match="401") as failed:
            era5.download_month(era5.month_request(era5_source(), "2020-03"), tmp_path / "m3.nc", factory)
        assert "wrong-token-4567" not in str(failed.value) and len(server.requests) == 1
    assert not (tmp_path / "m3.nc").exists()
