"""Prefect's result cache (`.prefect/storage`) holds data, not code: cached task results are stored
as JSON and read back only while they are plain JSON data; a planted record (a pickle, or JSON
naming its own decoder) runs nothing, counts as a miss and is replaced; cached runs still hit."""

from __future__ import annotations

import base64
import importlib
import json
import pickle
import pkgutil
import sys
from pathlib import Path

import pytest

from syncvp.data import era5
from syncvp.data.synthetic_era5 import month_filename
from tests.data.cds_standin import StandInCDS
from tests.data.test_era5 import era5_source


@pytest.mark.slow  # imports every flow module (torch, timm, dask): ~20 s on a busy 2-core machine
def test_every_persisted_task_stores_json_read_back_as_data():
    from prefect import Task

    import pipelines
    from pipelines.caching import JsonRecordsOnly

    persisted = []
    for info in pkgutil.iter_modules(pipelines.__path__):
        module = importlib.import_module(f"pipelines.{info.name}")
        persisted += [t for t in vars(module).values() if isinstance(t, Task) and t.persist_result]
    assert {t.name for t in persisted} >= {"download_month", "label_video", "evaluate_batch"}
    for t in persisted:
        assert t.result_serializer == "json", f"task {t.name} persists its result with {t.result_serializer!r}"
        assert isinstance(t.cache_policy, JsonRecordsOnly), f"task {t.name} would load any record ({t.cache_policy!r})"


def prefect_json_record(result) -> bytes:
    """A record as Prefect's JSON serializer writes it (no API needed: the storage is given)."""
    from prefect.filesystems import LocalFileSystem
    from prefect.results import ResultStore
    from prefect.serializers import JSONSerializer

    store = ResultStore(serializer=JSONSerializer(), result_storage=LocalFileSystem(basepath="/nonexistent"))
    return store.create_result_record(result, key="k").serialize()


def test_check_record_accepts_only_plain_json_data():
    from pipelines.caching import CacheRecordError, check_record

    check_record(prefect_json_record({"file": "/data/x.nc", "grid": [8, 8], "ok": True}))
    record = json.loads(prefect_json_record(Path("/data/x.nc")))  # Prefect encodes a Path as an object
    assert json.loads(record["result"]) == {"__class__": "pathlib.PosixPath", "data": "/data/x.nc"}
    with pytest.raises(CacheRecordError, match="encoded object"):
        check_record(json.dumps(record).encode())
    for serializer, result in (planted_pickle(Path("m")), planted_json_with_a_decoder(Path("m"))):
        with pytest.raises(CacheRecordError, match=f"serializer is {serializer['type']!r}"):
            check_record(
                json.dumps(
                    {**record, "metadata": {**record["metadata"], "serializer": serializer}, "result": result}
                ).encode()
            )
    with pytest.raises(CacheRecordError, match="not a JSON result record"):
        check_record(pickle.dumps({"result": 1}))


# --------------------------------------------------------------------------------------------
# a real cached task (one ERA5 month from a stand-in CDS) under the Prefect harness


def fetch_month(month: str, target: Path, client: StandInCDS) -> tuple[str, dict]:
    """Run the cached `download_month` task once in a flow: (its final state's name, its result)."""
    from prefect import flow

    from pipelines.download_era5 import download_month

    @flow(name="fetch-month")
    def fetch() -> tuple[str, dict]:
        request = era5.month_request(era5_source(months=("2019-02", "2019-03", "2019-04")), month)
        state = download_month(month, request, target, client, return_state=True)
        return state.name, state.result()

    return fetch()


def storage() -> Path:
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH

    path = Path(PREFECT_RESULTS_LOCAL_STORAGE_PATH.value())
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_record(month: str, tmp_path: Path) -> tuple[Path, dict]:
    """Download `month` into tmp_path through the cached task, then run the task again: the task
    is keyed on its target file's stamp, so the second run (the file on disk) stores the record
    that later runs hit. (That record's file, the second run's report.)"""
    target = tmp_path / month_filename(month)
    name, report = fetch_month(month, target, StandInCDS())
    assert (name, report["status"]) == ("Completed", "downloaded")
    before = set(storage().iterdir())
    name, report = fetch_month(month, target, StandInCDS())
    assert (name, report["status"]) == ("Completed", "kept")
    [record] = set(storage().iterdir()) - before
    return record, report


@pytest.mark.slow
def test_cached_results_are_json_and_hit(tmp_path, prefect_harness):
    record, report = cache_record("2019-03", tmp_path)
    content = record.read_bytes()
    assert not content.startswith(b"\x80"), "the record is a raw pickle"
    stored = json.loads(content)
    assert stored["metadata"]["serializer"]["type"] == "json", stored["metadata"]["serializer"]
    assert json.loads(stored["result"]) == report, "the result is stored as readable JSON data"
    client = StandInCDS()
    assert fetch_month("2019-03", tmp_path / month_filename("2019-03"), client) == ("Cached", report)
    assert client.calls == []


class Touch:
    """Unpickling it creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def planted_pickle(marker: Path) -> tuple[dict, str]:
    return {"type": "pickle", "picklelib": "cloudpickle"}, base64.b64encode(pickle.dumps(Touch(marker))).decode()


def planted_json_with_a_decoder(marker: Path) -> tuple[dict, str]:
    """JSON whose record names its object hook: subprocess.run runs the keys of each object as a command."""
    serializer = {
        "type": "json",
        "jsonlib": "json",
        "object_encoder": None,
        "object_decoder": "subprocess.run",
        "dumps_kwargs": {},
        "loads_kwargs": {},
    }
    return serializer, json.dumps({sys.executable: 0, "-c": 0, f"open({str(marker)!r}, 'w')": 0})


@pytest.mark.slow
@pytest.mark.parametrize("plant", [planted_pickle, planted_json_with_a_decoder])
def test_a_planted_record_runs_no_code_and_is_replaced(tmp_path, prefect_harness, plant):
    record, report = cache_record("2019-04", tmp_path)
    marker = tmp_path / "code-ran"
    stored = json.loads(record.read_bytes())
    stored["metadata"]["serializer"], stored["result"] = plant(marker)
    record.write_text(json.dumps(stored))
    name, again = fetch_month("2019-04", tmp_path / month_filename("2019-04"), StandInCDS())
    assert not marker.exists(), "loading the cached result ran code"
    assert name == "Completed" and again["status"] == "kept", "the planted record counts as a cache miss"
    replaced = json.loads(record.read_bytes())
    assert replaced["metadata"]["serializer"]["type"] == "json" and json.loads(replaced["result"]) == again
