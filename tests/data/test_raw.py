"""Raw RGB videos of the synthetic source."""

from __future__ import annotations

import numpy as np
import pytest

from syncvp.data import store, synthetic_video
from syncvp.data.sources import raw_videos


def test_synthetic_raw_videos(tmp_path, tiny_params):
    cfg = tiny_params.datasets["synthetic"]
    for split in ("train", "val", "test"):
        store.write_store(tmp_path / f"{split}.nc", synthetic_video.render_split("synthetic", cfg.source, split))
    videos = raw_videos("synthetic", cfg, tmp_path)
    assert [v.video_id for v in videos][:4] == ["train-0000", "train-0001", "train-0002", "val-0000"]
    frames = videos[-1].load()
    assert frames.shape == (12, 16, 16, 3) and frames.dtype == np.uint8
    again = synthetic_video.render_video(cfg.source.seed, "test", 1, resolution=16, frames=12, objects=cfg.source.objects,
                                         speed=cfg.source.speed, camera_pan=cfg.source.camera_pan, supersample=1,
                                         far=cfg.source.depth_range[1])
    np.testing.assert_array_equal(frames, again["rgb"])
    with pytest.raises(ValueError, match="no raw RGB videos"):
        raw_videos("era5_synthetic", tiny_params.datasets["era5_synthetic"], tmp_path)


def test_interim_depth_round_trip(tmp_path):
    from syncvp.data.interim import depth_file, read_depth, write_depth

    depth = np.random.default_rng(0).integers(0, 256, (3, 5, 7), dtype=np.uint8)
    path = write_depth(depth_file(tmp_path, "train-0001"), depth, {"encoder": "vitb"})
    assert path == tmp_path / "depth" / "train-0001.npz"
    got, attrs = read_depth(path)
    np.testing.assert_array_equal(got, depth)
    assert attrs == {"encoder": "vitb"}
    again = write_depth(tmp_path / "again.npz", depth, {"encoder": "vitb"})
    assert again.read_bytes() == path.read_bytes()
    with pytest.raises(ValueError, match="uint8"):
        write_depth(tmp_path / "bad.npz", depth.astype(np.float32), {})
    with pytest.raises(FileNotFoundError, match="pseudo_depth"):
        read_depth(tmp_path / "none.npz")
