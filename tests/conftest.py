"""Shared fixtures: the repo's params, tiny configs, an isolated Prefect home, the harness."""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Isolate Prefect state (database, result cache) per test session, before prefect is imported.
_PREFECT_HOME = Path(tempfile.mkdtemp(prefix="syncvp-test-prefect-"))
os.environ["PREFECT_HOME"] = str(_PREFECT_HOME)
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(_PREFECT_HOME / "storage")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_RESULTS_DEFAULT_SERIALIZER"] = "json"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"
os.environ.pop("PREFECT_API_URL", None)
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
atexit.register(shutil.rmtree, _PREFECT_HOME, True)  # ignore_errors: the harness may still be closing

REPO = Path(__file__).resolve().parents[1]

from syncvp.config import Params, load_params  # noqa: E402

# Test files whose tests share one session fixture: one xdist work unit, run first (see below).
SHARED_RUN = {"tests/e2e/test_dvc_repro.py": "e2e", "tests/e2e/test_real_sources.py": "e2e"}


def _work_unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return SHARED_RUN.get(path, path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist (`-n 2 --dist loadfile`, pyproject.toml) a worker runs whole test files,
    so that a module fixture (a server, a trained model) is made once, and the two end-to-end files
    form one unit: they share the one `dvc repro` of tests/e2e/conftest.py, the longest unit of
    the suite. (xdist's own `loadgroup` marks do not work on pytest 9: they rename the node id,
    which pytest 9 no longer reads from the attribute xdist sets.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesAndSharedRun(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return FilesAndSharedRun(config, log)


def pytest_collection_modifyitems(config, items):
    """The shared end-to-end run first (with `--no-loadscope-reorder` xdist hands out work units
    in this order, so the longest one starts at once), the rest in file order; tests that need
    CUDA are skipped without it."""
    import torch

    items.sort(key=lambda item: _work_unit(item.nodeid) != "e2e")  # stable: file order is kept

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_params() -> Params:
    """The repository's params.yaml, loaded strictly."""
    return load_params(REPO / "params.yaml")


def tiny_dataset(params: Params, name: str = "synthetic", **source_changes):
    """The synthetic dataset shrunk to a few 16-pixel videos of 12 frames."""
    ds = params.datasets[name]
    videos = dataclasses.replace(ds.source.videos, train=3, val=1, test=2)
    changes = dict(resolution=16, frames=12, videos=videos, supersample=1)
    changes.update(source_changes)
    source = dataclasses.replace(ds.source, **changes)
    return dataclasses.replace(ds, source=source, resolution=(16, 16), rollout_frames=8)


@pytest.fixture
def tiny_params(repo_params: Params, tmp_path: Path) -> Params:
    """Repo params with every path under tmp_path and a tiny synthetic dataset."""
    paths = dataclasses.replace(
        repo_params.paths,
        raw=tmp_path / "raw",
        interim=tmp_path / "interim",
        processed=tmp_path / "processed",
        models=tmp_path / "models",
        eval=tmp_path / "eval",
    )
    datasets = dict(repo_params.datasets)
    datasets["synthetic"] = tiny_dataset(repo_params)
    return with_pipeline(repo_params, paths=paths, datasets=datasets)


def with_pipeline(params: Params, **changes) -> Params:
    """`dataclasses.replace` on Params that also rewrites the derived `pipeline` section."""
    from syncvp.config.pipeline import PipelineConfig, expected_pipeline

    datasets = changes.get("datasets", params.datasets)
    paths = changes.get("paths", params.paths)
    train = tuple(t for t in params.pipeline.train if t in datasets)
    diffusion = changes.get("diffusion", params.diffusion)
    pipeline = PipelineConfig(**expected_pipeline(datasets, paths, train, diffusion.context_encoder))
    return dataclasses.replace(params, pipeline=pipeline, **changes)


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API (one per session; it takes seconds to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def one_torch_thread():
    """Tiny networks run fastest single-threaded (and stay fast on a busy shared machine). Use it with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")` or an autouse fixture requesting it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
