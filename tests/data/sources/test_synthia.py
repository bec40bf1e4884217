"""SYNTHIA: class id from the red channel of 16-bit label PNGs, id / 15 * 255, nearest-only
resizing of labels, frame pairing, raw RGB listing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from syncvp.config import DatasetConfig, NameSplits, SynthiaSource
from syncvp.data.frame_sources import FramePairingError
from syncvp.data.sources import raw_videos, synthia
from tests.data.source_trees import CAMERA, class_ids, interim_at, rgb_frame, write_label, write_synthia

SEQS = ("SYNTHIA-SEQS-01-DAWN", "SYNTHIA-SEQS-02-DAWN", "SYNTHIA-SEQS-04-DAWN")


def synthia_config(root, **changes) -> DatasetConfig:
    args = dict(kind="synthia", root=root, camera=CAMERA, splits=NameSplits(train=SEQS[:1], val=SEQS[1:2], test=SEQS[2:]),
                frame_step=1, video_frames=4, stride=2, resize="area")
    args.update(changes)
    return DatasetConfig(source=SynthiaSource(**args), modalities=("rgb", "semantic"), resolution=(8, 8),
                         context_frames=1, future_frames=2, rollout_frames=3, pseudo_depth=None,
                         models=None)


def test_crafted_label_gives_exact_gray_levels(tmp_path):
    ids = np.repeat(np.repeat(np.arange(16).reshape(4, 4), 4, axis=0), 4, axis=1)
    write_label(tmp_path / "l.png", ids, instance=65535)
    raw = cv2.imread(str(tmp_path / "l.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (16, 16, 3), "a 16-bit 3-channel PNG"
    np.testing.assert_array_equal(synthia.read_class_ids(tmp_path / "l.png"), ids)
    gray = synthia.read_semantic(tmp_path / "l.png")
    assert gray.dtype == np.uint8
    np.testing.assert_array_equal(gray, ids * 17)
    assert sorted(np.unique(gray)) == list(range(0, 256, 17)), "exactly 0, 17, 34, ..., 255"


def test_out_of_range_ids_and_wrong_shapes_are_errors(tmp_path):
    ids = np.zeros((6, 6), np.int64)
    ids[2, 3] = 17
    write_label(tmp_path / "bad.png", ids)
    with pytest.raises(synthia.LabelError, match=r"bad\.png: class id 17 at \(y=2, x=3\) is outside 0\.\.15"):
        synthia.read_class_ids(tmp_path / "bad.png")
    cv2.imwrite(str(tmp_path / "gray.png"), np.zeros((6, 6), np.uint16))
    with pytest.raises(synthia.LabelError, match="expected a 3-channel label PNG"):
        synthia.read_class_ids(tmp_path / "gray.png")


def test_prepare_split_crops_and_resizes_rgb_area_labels_nearest(tmp_path):
    for seq in SEQS:
        write_synthia(tmp_path, seq, frames=6, size=(24, 32))
    cfg = synthia_config(tmp_path)
    ds = synthia.prepare_split("synthia", cfg, interim_at(tmp_path / "interim"), "val", {})
    assert list(ds["video_id"].values) == [f"{SEQS[1]}-000000", f"{SEQS[1]}-000002"]
    assert ds["rgb"].shape == (2, 4, 8, 8, 3) and ds["semantic"].shape == (2, 4, 8, 8)
    sem = ds["semantic"].values
    assert set(np.unique(sem)) <= set(range(0, 256, 17)), "nearest never blends classes"
    for v, start in enumerate((0, 2)):
        for t in range(4):
            i = start + t
            crop_ids = class_ids(i, (24, 32))[:, 4:28]  # centre square of the 24x32 frame
            np.testing.assert_array_equal(sem[v, t], crop_ids[1::3, 1::3] * 17)
            area = cv2.resize(rgb_frame(i, (24, 32))[:, 4:28], (8, 8), interpolation=cv2.INTER_AREA)
            np.testing.assert_array_equal(ds["rgb"].values[v, t], area)
    assert ds["semantic"].attrs["num_classes"] == 16 and ds["semantic"].attrs["encoding"] == "class_gray"


def test_frame_step_and_missing_frames(tmp_path):
    for seq in SEQS:
        write_synthia(tmp_path, seq, frames=9)
    videos = synthia.videos("s", synthia_config(tmp_path, frame_step=2, stride=4).source, tmp_path)
    train = [v for v in videos if v.split == "train"]
    assert [v.video_id for v in train] == [f"{SEQS[0]}-000000"]
    assert [p.name for p in train[0].files["semantic"]] == ["000000.png", "000002.png", "000004.png", "000006.png"]
    (tmp_path / SEQS[2] / "GT" / "LABELS" / CAMERA / "000005.png").unlink()
    with pytest.raises(FramePairingError, match=rf"sequence '{SEQS[2]}'.*'semantic' lacks frame '000005'"):
        synthia.videos("s", synthia_config(tmp_path).source, tmp_path)
    with pytest.raises(FileNotFoundError, match="SYNTHIA-SEQS-09"):
        synthia.videos("s", synthia_config(tmp_path, splits=NameSplits(train=("SYNTHIA-SEQS-09",), val=SEQS[1:2],
                                                                         test=SEQS[2:])).source, tmp_path)


def test_raw_rgb_videos_for_pseudo_depth(tmp_path):
    for seq in SEQS:
        write_synthia(tmp_path, seq, frames=6, size=(12, 20))
    videos = raw_videos("synthia", synthia_config(tmp_path), tmp_path)
    assert [v.video_id for v in videos] == [f"{s}-{p:06d}" for s in SEQS for p in (0, 2)]
    frames = videos[1].load()
    assert frames.shape == (4, 12, 20, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, np.stack([rgb_frame(i, (12, 20)) for i in range(2, 6)]))
    assert videos[1].files[0].name == "000002.png"
