"""Video files (OpenDV-YouTube): target fps, trimming, centre crop + resize, clear decoding
errors; and the pseudo-depth merge of `prepare` (files made by `write_depth`)."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from syncvp.config import DatasetConfig, VideoSegment, VideoSource, VideoSplits
from syncvp.data import frame_sources
from syncvp.data.interim import depth_file, write_depth
from syncvp.data.sources import raw_videos
from syncvp.data.sources import video as video_file  # the reader of video files
from tests.data.source_trees import frame_number, interim_at, write_video


def segment(file="drive.mp4", start=0.0, end=None) -> VideoSegment:
    return VideoSegment(file=file, start_s=start, end_s=end)


def video_source(root, **changes) -> VideoSource:
    args = dict(kind="video", root=root, fps=5.0, trim_s=(1.0, 0.5), video_frames=4, stride=4, resize="area",
                splits=VideoSplits(train=(segment(end=2.0),), val=(segment(start=2.0, end=2.8),), test=(segment(start=2.8),)))
    args.update(changes)
    return VideoSource(**args)


@pytest.fixture
def mp4(tmp_path):
    write_video(tmp_path / "drive.mp4", frames=40, fps=10.0)  # 4 s at 10 fps, 64 x 96
    return tmp_path


def test_trim_resample_and_chunk(mp4):
    videos = video_file.videos("opendv", video_source(mp4), mp4)
    # trimming 1 s / 0.5 s of 4 s leaves [1, 3.5) s: output frames k = 5..17 (at k / 5 s) show
    # source frames 2k; train [1, 2) s -> k 5..9, val [2, 2.8) -> 10..13, test [2.8, 3.5) -> 14..17
    assert [(v.split, v.video_id) for v in videos] == [("train", "drive-0000005"), ("val", "drive-0000010"),
                                                       ("test", "drive-0000014")]
    for video, first in zip(videos, (5, 10, 14)):
        shown = [frame_number(f) for f in video.loaders["rgb"]()]
        assert shown == [2 * k for k in range(first, first + 4)]


def test_centre_crop_and_resize_remove_the_borders(mp4):
    video = video_file.videos("opendv", video_source(mp4), mp4)[0]
    native = video.loaders["rgb"]()
    assert native.shape == (4, 64, 96, 3)
    assert (native[:, :, :8, 0] > 200).all() and (native[:, :, :8, 2] < 60).all(), "red borders, RGB order"
    out = frame_sources.crop_resize(native, (32, 32), "area")
    assert out.shape == (4, 32, 32, 3)
    assert (np.abs(out.astype(int) - out[..., :1].astype(int)) <= 8).all(), "gray only: the red borders are cropped"
    assert (np.abs(native.astype(int) - native[..., :1].astype(int)) > 100).any()


def test_seeking_reads_the_same_frames_as_decoding_from_the_start(mp4):
    cap = cv2.VideoCapture(str(mp4 / "drive.mp4"))
    sequential = [cap.read()[1][..., ::-1] for _ in range(30)]
    cap.release()
    np.testing.assert_array_equal(video_file.read_frames(mp4 / "drive.mp4", [17, 19, 26]), np.stack(sequential)[[17, 19, 26]])


def test_decoding_errors_are_clear(tmp_path):
    write_video(tmp_path / "a.mp4", frames=30, fps=10.0)
    data = (tmp_path / "a.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(video_file.VideoDecodeError, match=r"cut\.mp4: cannot be opened by OpenCV"):
        video_file.probe(tmp_path / "cut.mp4")
    write_video(tmp_path / "b.avi", frames=30, fps=10.0, codec="MJPG")
    data = (tmp_path / "b.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    info = video_file.probe(tmp_path / "cut.avi")
    assert info.frames == 30, "the header still promises every frame"
    with pytest.raises(video_file.VideoDecodeError, match=r"cut\.avi: decoding stopped at frame \d+ of the 30 it reports"):
        video_file.read_frames(tmp_path / "cut.avi", list(range(0, 30, 3)), info.frames)
    with pytest.raises(video_file.VideoDecodeError, match="does not exist"):
        video_file.probe(tmp_path / "none.mp4")


def test_fps_above_the_file_rate_is_refused(mp4):
    with pytest.raises(ValueError, match="fps 25.0 exceeds the 10.0 fps"):
        video_file.videos("opendv", video_source(mp4, fps=25.0), mp4)


def pseudo_config(source, resolution=(16, 16)):
    """A dataset of an RGB-only source whose `depth` comes from pseudo-depth (duck-typed: the
    `pseudo_depth` field of DatasetConfig is added by the pseudo-depth stage)."""
    return SimpleNamespace(source=source, modalities=("rgb", "depth"), resolution=resolution,
                           pseudo_depth=SimpleNamespace(encoder="vitl"))


def test_pseudo_depth_gets_the_same_crop_and_resize_as_rgb(mp4, tmp_path):
    source = video_source(mp4)
    cfg = pseudo_config(source)
    rng = np.random.default_rng(0)
    raw = raw_videos("opendv", cfg, mp4)
    depths = {}
    for video in raw:
        depths[video.video_id] = rng.integers(0, 256, (4, 64, 96), dtype=np.uint8)
        write_depth(depth_file(tmp_path / "interim", video.video_id), depths[video.video_id], {"encoder": "vitl"})
    ds = video_file.prepare_split("opendv", cfg, interim_at(tmp_path / "interim"), "val", {})
    assert list(ds["video_id"].values) == ["drive-0000010"] and ds["depth"].shape == (1, 4, 16, 16)
    expect = np.stack([cv2.resize(d[:, 16:80], (16, 16), interpolation=cv2.INTER_AREA) for d in depths["drive-0000010"]])
    np.testing.assert_array_equal(ds["depth"].values[0], expect)
    assert ds["depth"].attrs["encoding"] == "pseudo_depth" and "vitl" in ds["depth"].attrs["pseudo_depth"]
    write_depth(depth_file(tmp_path / "interim", "drive-0000010"), depths["drive-0000010"][:3], {"encoder": "vitl"})
    with pytest.raises(ValueError, match=r"drive-0000010\.npz: pseudo-depth of shape \(3, 64, 96\).*stale"):
        video_file.prepare_split("opendv", cfg, interim_at(tmp_path / "interim"), "val", {})
    with pytest.raises(FileNotFoundError, match="run the `pseudo_depth` stage"):
        video_file.prepare_split("opendv", cfg, interim_at(tmp_path / "elsewhere"), "val", {})


def test_depth_needs_pseudo_depth_in_the_dataset_config(mp4):
    from syncvp.config.depth import PseudoDepthConfig, TaskRunnerConfig

    with pytest.raises(ValueError, match=r"modalities\[1\]: 'depth' is not provided by source kind 'video'"):
        DatasetConfig(source=video_source(mp4), modalities=("rgb", "depth"), resolution=(16, 16), context_frames=1,
                      future_frames=2, rollout_frames=3, pseudo_depth=None, models=None)
    pseudo = PseudoDepthConfig(encoder="vitl", input_size=518, batch_size=4, normalization="per_frame",
                               precision="auto", task_runner=TaskRunnerConfig(kind="threads", workers=1, address=None))
    cfg = DatasetConfig(source=video_source(mp4), modalities=("rgb", "depth"), resolution=(16, 16), context_frames=1,
                        future_frames=2, rollout_frames=3, pseudo_depth=pseudo, models=None)
    assert cfg.modalities == ("rgb", "depth")


def test_pseudo_depth_of_several_videos_per_split_merges(tmp_path):
    """Each label file names its own video (`video_id`, `label_key`); only how the depth was made
    must agree across the videos of a split."""
    for name in ("a.mp4", "b.mp4"):
        write_video(tmp_path / name, frames=40, fps=10.0)
    source = video_source(tmp_path, splits=VideoSplits(train=(segment("a.mp4", end=2.0), segment("b.mp4", end=2.0)),
                                                       val=(segment("a.mp4", start=2.0),), test=(segment("b.mp4", start=2.0),)))
    cfg = pseudo_config(source)
    recipe = {"encoder": "vitl", "input_size": 518}
    for i, video in enumerate(raw_videos("opendv", cfg, tmp_path)):
        write_depth(depth_file(tmp_path / "interim", video.video_id), np.full((4, 64, 96), i, np.uint8),
                    {**recipe, "video_id": video.video_id, "label_key": f"key-{i}"})
    ds = video_file.prepare_split("opendv", cfg, interim_at(tmp_path / "interim"), "train", {})
    assert list(ds["video_id"].values) == ["a-0000005", "b-0000005"]
    assert ds["depth"].attrs["pseudo_depth"] == '{"encoder": "vitl", "input_size": 518}'
    write_depth(depth_file(tmp_path / "interim", "b-0000005"), np.zeros((4, 64, 96), np.uint8),
                {**recipe, "encoder": "vits", "video_id": "b-0000005", "label_key": "other"})
    with pytest.raises(ValueError, match=r"video 'b-0000005': pseudo-depth made differently"):
        video_file.prepare_split("opendv", cfg, interim_at(tmp_path / "interim"), "train", {})
