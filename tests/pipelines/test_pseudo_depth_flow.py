"""The `pseudo_depth` flow on the tiny synthetic dataset (random ViT-S weights in the official
layout, 28-pixel network input): outputs, per-video caching, resume, stale labels, errors."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from syncvp.config import SPLITS
from syncvp.config.depth import PseudoDepthConfig, TaskRunnerConfig
from syncvp.data import interim, store, synthetic_video, transforms
from syncvp.data import pseudo_depth as pdepth
from syncvp.io.weights import MissingWeightsError
from tests.conftest import with_pipeline
from tests.models.depth_anything_weights import save_random_checkpoint

pytestmark = pytest.mark.slow


def depth_config(**changes) -> PseudoDepthConfig:
    runner = TaskRunnerConfig(kind="threads", workers=2, address=None)
    base = dict(
        encoder="vits", input_size=28, batch_size=4, normalization="per_frame", precision="auto", task_runner=runner
    )
    return PseudoDepthConfig(**{**base, **changes})


@pytest.fixture
def depth_params(tiny_params, tmp_path):
    """tiny_params with pseudo-depth on the synthetic dataset, random ViT-S weights and raw videos."""
    weights = save_random_checkpoint(tmp_path / "weights" / "depth_anything_v2_vits.pth", "vits", seed=7)
    cfg = dataclasses.replace(tiny_params.datasets["synthetic"], pseudo_depth=depth_config())
    params = with_pipeline(
        tiny_params,
        datasets={"synthetic": cfg},
        weights=dataclasses.replace(tiny_params.weights, depth_anything_vits=weights),
    )
    assert params.pipeline.pseudo_depth == {"synthetic": str(params.paths.raw_dir("synthetic"))}
    assert params.pipeline.prepare == {"synthetic": str(params.paths.interim_dir("synthetic"))}
    for split in SPLITS:
        store.write_store(
            params.paths.raw_dir("synthetic") / f"{split}.nc",
            synthetic_video.render_split("synthetic", cfg.source, split),
        )
    return params


@pytest.fixture
def inference_calls(monkeypatch):
    """Video ids that went through the network, in call order."""
    calls, lock, real = [], threading.Lock(), pdepth.estimate_depth

    def counting(model, frames, **kwargs):
        with lock:
            calls.append(frames.shape)
        return real(model, frames, **kwargs)

    monkeypatch.setattr(pdepth, "estimate_depth", counting)
    return calls


def run(params, **changes):
    from pipelines.pseudo_depth import pseudo_depth

    cfg = params.datasets["synthetic"]
    if changes:
        cfg = dataclasses.replace(cfg, pseudo_depth=dataclasses.replace(cfg.pseudo_depth, **changes))
    return Path(pseudo_depth("synthetic", cfg, params.paths, params.weights.depth_anything_vits, "cpu", 0))


def labels(out: Path) -> dict[str, tuple[np.ndarray, dict]]:
    return {p.stem: interim.read_depth(p) for p in sorted((out / "depth").glob("*.npz"))}


def test_flow_labels_every_video_and_resumes(depth_params, inference_calls, prefect_harness):
    out = run(depth_params)
    assert out == depth_params.paths.interim_dir("synthetic")
    first = labels(out)
    assert list(first) == ["test-0000", "test-0001", "train-0000", "train-0001", "train-0002", "val-0000"]
    assert len(inference_calls) == 6
    for depth, attrs in first.values():
        assert depth.shape == (12, 16, 16) and depth.dtype == np.uint8
        per_frame = depth.reshape(12, -1)
        assert per_frame.min(axis=1).tolist() == [0] * 12 and per_frame.max(axis=1).tolist() == [255] * 12
        assert attrs["encoder"] == "vits" and attrs["input_size"] == 28 and attrs["normalization"] == "per_frame"
        assert attrs["encoding"] == "per-frame min-max to 0-255 (truncated to uint8), larger = nearer"
    assert not [p for p in (out / "depth").iterdir() if p.name.startswith(".")]

    run(depth_params)  # nothing to do: every video comes from the cache
    assert len(inference_calls) == 6

    (out / "depth" / "train-0001.npz").unlink()  # a crash before this video was written
    (out / "depth" / "train-0099.npz").write_bytes(b"stale")  # a video no longer listed
    (out / "depth" / ".train-0001.npz.tmp-x1y2").write_bytes(b"half")  # left by a killed write
    run(depth_params)
    assert len(inference_calls) == 7, "only the missing video is redone"
    again = labels(out)
    assert list(again) == list(first), "the unlisted file is pruned"
    assert sorted(p.name for p in (out / "depth").iterdir()) == [f"{v}.npz" for v in first], "temporaries too"
    for vid in first:
        np.testing.assert_array_equal(again[vid][0], first[vid][0])


def test_a_param_change_never_reuses_stale_labels(depth_params, inference_calls, prefect_harness):
    out = run(depth_params)
    assert len(inference_calls) == 6
    run(depth_params, normalization="per_video")
    assert len(inference_calls) == 12, "new settings, new labels"
    assert {a["normalization"] for _, a in labels(out).values()} == {"per_video"}
    run(depth_params, normalization="per_video", batch_size=3)  # a speed-only change keeps the labels
    assert len(inference_calls) == 12
    # back to the first settings: Prefect's cache has them, but the files on disk are per-video
    run(depth_params)
    assert len(inference_calls) == 18
    assert {a["normalization"] for _, a in labels(out).values()} == {"per_frame"}


def test_progress_shows_videos_done_of_total(depth_params, monkeypatch, prefect_harness):
    import pipelines.pseudo_depth as flow_module
    from pipelines.reporting import PrefectProgress

    events, tables = [], []

    class Recording(PrefectProgress):  # the real artifact, plus a record of what it was told
        def __call__(self, event):
            events.append((self.key, event.task, event.done, event.total))
            super().__call__(event)

    monkeypatch.setattr(flow_module, "PrefectProgress", Recording)
    monkeypatch.setattr(flow_module, "publish_table", lambda key, rows, description: tables.append((key, rows)))
    run(depth_params)
    assert [e[2:] for e in events] == [(i, 6) for i in range(7)]
    assert {e[:2] for e in events} == {("synthetic-pseudo-depth-progress", "videos")}
    ((key, rows),) = tables
    assert key == "synthetic-pseudo-depth" and [r["video"] for r in rows][:2] == ["test-0000", "test-0001"]
    assert {r["status"] for r in rows} == {"labelled"} and all(r["frames"] == 12 for r in rows)


def test_missing_or_wrong_weights_fail_before_any_frame_is_read(depth_params, monkeypatch, prefect_harness):
    import pipelines.pseudo_depth as flow_module
    from syncvp.models.depth_anything import CheckpointError

    def no_frames(*args, **kwargs):
        raise AssertionError("frames were listed or read before the weights were checked")

    monkeypatch.setattr(flow_module, "raw_videos", no_frames)
    cfg, paths = depth_params.datasets["synthetic"], depth_params.paths
    with pytest.raises(MissingWeightsError, match=r"weights\.depth_anything_vits is null") as err:
        flow_module.pseudo_depth("synthetic", cfg, paths, None, "cpu", 0)
    assert "depth_anything_v2_vits.pth" in str(err.value) and "huggingface.co/depth-anything" in str(err.value)
    with pytest.raises(MissingWeightsError, match="not found"):
        flow_module.pseudo_depth("synthetic", cfg, paths, paths.raw / "nowhere.pth", "cpu", 0)
    vitb = dataclasses.replace(cfg, pseudo_depth=depth_config(encoder="vitb"))
    with pytest.raises(CheckpointError, match="holds Depth-Anything-V2 ViT-S weights.*'vitb'"):
        flow_module.pseudo_depth("synthetic", vitb, paths, depth_params.weights.depth_anything_vits, "cpu", 0)
    assert not paths.interim_dir("synthetic").exists()


def test_dask_task_runner(depth_params, prefect_harness):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        runner = TaskRunnerConfig(kind="dask", workers=1, address=cluster.scheduler_address)
        out = run(depth_params, task_runner=runner)
    assert len(labels(out)) == 6


def test_flow_reads_video_files_from_the_source_root(tiny_params, tmp_path, prefect_harness):
    """An RGB-only source lives where `source.root` says (the folder DVC tracks for the stage),
    not under `paths.raw`: every segment of every file gets its label."""
    from pipelines.pseudo_depth import pseudo_depth
    from syncvp.config import DatasetConfig, VideoSegment, VideoSource, VideoSplits
    from tests.data.source_trees import write_video

    root = tmp_path / "videos"
    root.mkdir()
    write_video(root / "a.mp4", frames=40, fps=10.0)  # 4 s, 64 x 96
    write_video(root / "b.avi", frames=30, fps=10.0, size=(48, 80), codec="MJPG")  # 3 s, another size

    def seg(file, start=0.0, end=None):
        return VideoSegment(file=file, start_s=start, end_s=end)

    source = VideoSource(
        kind="video",
        root=root,
        fps=5.0,
        trim_s=(0.0, 0.0),
        video_frames=4,
        stride=4,
        resize="area",
        splits=VideoSplits(
            train=(seg("a.mp4", end=2.0), seg("b.avi", end=1.6)),
            val=(seg("a.mp4", start=2.0),),
            test=(seg("b.avi", start=1.6),),
        ),
    )
    weights = save_random_checkpoint(tmp_path / "weights" / "depth_anything_v2_vits.pth", "vits", seed=7)
    cfg = DatasetConfig(
        source=source,
        modalities=("rgb", "depth"),
        resolution=(16, 16),
        context_frames=1,
        future_frames=2,
        rollout_frames=3,
        pseudo_depth=depth_config(),
        models=None,
    )
    params = with_pipeline(
        tiny_params,
        datasets={"clips": cfg},
        weights=dataclasses.replace(tiny_params.weights, depth_anything_vits=weights),
    )
    assert params.pipeline.pseudo_depth == {"clips": str(root)}
    out = Path(pseudo_depth("clips", cfg, params.paths, weights, "cpu", 0))
    got = labels(out)
    from syncvp.data.sources import raw_videos

    listed = sorted(v.video_id for v in raw_videos("clips", cfg, root))
    assert sorted(got) == listed and {i.split("-")[0] for i in listed} == {"a", "b"} and len(listed) >= 4
    assert got["a-0000000"][0].shape == (4, 64, 96) and got["b-0000000"][0].shape == (4, 48, 80)
    assert not params.paths.raw_dir("clips").exists()


def test_prepare_uses_the_estimate_on_the_synthetic_source(depth_params, prefect_harness):
    from syncvp.data.prepare import prepare_split

    out = run(depth_params)
    cfg, paths = depth_params.datasets["synthetic"], depth_params.paths
    estimated = prepare_split("synthetic", cfg, paths, "test", {})
    exact = prepare_split("synthetic", dataclasses.replace(cfg, pseudo_depth=None), paths, "test", {})
    assert estimated["depth"].attrs["encoding"] == "pseudo_depth"
    assert json.loads(estimated["depth"].attrs["pseudo_depth"])["encoder"] == "vits"
    assert exact["depth"].attrs["encoding"] == "inverse_depth"
    for v, vid in enumerate(["test-0000", "test-0001"]):
        label, _ = interim.read_depth(out / "depth" / f"{vid}.npz")
        want = transforms.resize_frames(label, tuple(cfg.resolution), "area")
        np.testing.assert_array_equal(estimated["depth"].values[v], want)
    assert not np.array_equal(estimated["depth"].values, exact["depth"].values)
    np.testing.assert_array_equal(estimated["rgb"].values, exact["rgb"].values)
    (out / "depth" / "test-0001.npz").unlink()
    with pytest.raises(FileNotFoundError, match="test-0001.npz does not exist: run the `pseudo_depth` stage"):
        prepare_split("synthetic", cfg, paths, "test", {})
