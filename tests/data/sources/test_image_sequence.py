"""Image-sequence folders (Cityscapes-, BAIR-like): pairing of modalities by frame name, split
files, natural frame order, 16-bit maps, centre crop + resize."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from syncvp.config import DatasetConfig, ImageModality, ImageSequenceSource
from syncvp.data.frame_sources import FramePairingError, read_image
from syncvp.data.sources import image_sequence, raw_videos
from tests.data.source_trees import interim_at, rgb_frame, write_rgb

CITY_PATTERN = r"(?P<sequence>[a-z]+_\d+)_(?P<frame>\d+)_(leftImg8bit|disparity)"
SIZE = (16, 24)


def write_city(root, split: str, city: str, snippets: int, frames: int) -> None:
    for s in range(snippets):
        for i in range(frames):
            stem = f"{city}_{s:06d}_{i:06d}"
            write_rgb(root / "rgb" / split / city / f"{stem}_leftImg8bit.png", rgb_frame(i, SIZE, salt=s))
            disparity = np.full(SIZE, 1000 * i + 500, np.uint16)
            disparity[:, :4] = 60000  # outside the crop
            path = root / "depth" / split / city / f"{stem}_disparity.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(path), disparity)


def write_splits(root, train="train", val="val", test="test  # the official val set") -> None:
    (root / "splits").mkdir(exist_ok=True)
    for split, text in (("train", train), ("val", val), ("test", test)):
        (root / "splits" / f"{split}.txt").write_text(text + "\n")


def city_config(root, **changes) -> DatasetConfig:
    args = dict(kind="image_sequence", root=root,
                modalities={"rgb": ImageModality(channels=3, resize="area", value_range=None, classes=None),
                            "depth": ImageModality(channels=1, resize="area", value_range=(0.0, 25500.0), classes=None)},
                rgb_modality="rgb", frame_pattern=CITY_PATTERN, frame_step=1, video_frames=4, stride=4,
                splits="files", held_out=None, val=None)
    args.update(changes)
    return DatasetConfig(source=ImageSequenceSource(**args), modalities=("rgb", "depth"), resolution=(8, 8),
                         context_frames=1, future_frames=2, rollout_frames=3, pseudo_depth=None,
                         models=None)


@pytest.fixture
def city(tmp_path):
    write_city(tmp_path, "train", "aachen", snippets=2, frames=8)
    write_city(tmp_path, "val", "bochum", snippets=1, frames=4)
    write_city(tmp_path, "test", "berlin", snippets=1, frames=5)
    write_splits(tmp_path)
    return tmp_path


def test_cityscapes_layout_pairs_frames_by_name(city):
    cfg = city_config(city)
    ds = image_sequence.prepare_split("cityscapes", cfg, interim_at(city / "interim"), "train", {})
    assert list(ds["video_id"].values) == ["train__aachen__aachen_000000-000000", "train__aachen__aachen_000000-000004",
                                           "train__aachen__aachen_000001-000000", "train__aachen__aachen_000001-000004"]
    assert ds["rgb"].shape == (4, 4, 8, 8, 3) and ds["depth"].shape == (4, 4, 8, 8)
    for v, start in enumerate((0, 4, 0, 4)):
        for t in range(4):
            frame = start + t
            assert (ds["rgb"].values[v, t, ..., 0] == 10 * frame + 5).all()
            assert (ds["depth"].values[v, t] == 10 * frame + 5).all(), "depth paired with the same frame"
    expect = cv2.resize(rgb_frame(2, SIZE, salt=1)[:, 4:20], (8, 8), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(ds["rgb"].values[2, 2], expect)
    assert list(ds["depth"].attrs["value_range"]) == [0.0, 25500.0]
    test = image_sequence.prepare_split("cityscapes", cfg, interim_at(city / "interim"), "test", {})
    assert list(test["video_id"].values) == ["test__berlin__berlin_000000-000000"], "5 frames: one video of 4"


def test_missing_or_extra_frame_is_an_error_naming_it(city):
    source = city_config(city).source
    missing = city / "depth" / "train" / "aachen" / "aachen_000001_000003_disparity.png"
    data = missing.read_bytes()
    missing.unlink()
    with pytest.raises(FramePairingError, match=r"sequence 'train/aachen/aachen_000001'.*'depth' lacks frame '000003'"):
        image_sequence.videos("c", source, city)
    missing.write_bytes(data)
    extra = city / "depth" / "val" / "bochum" / "bochum_000000_000009_disparity.png"
    extra.write_bytes(data)
    with pytest.raises(FramePairingError, match=r"'depth' has frame '000009' that 'rgb' lacks"):
        image_sequence.videos("c", source, city)
    extra.unlink()
    (city / "rgb" / "val" / "bochum" / "bochum_000000_000001_leftImg8bit.jpg").write_bytes(b"")
    with pytest.raises(FramePairingError, match="also comes from"):
        image_sequence.videos("c", source, city)


def test_split_files(city):
    source = city_config(city).source
    write_splits(city, val="val\nberlin")
    with pytest.raises(ValueError, match=r"val\.txt: entry 'berlin' matches no sequence"):
        image_sequence.videos("c", source, city)
    write_splits(city, val="val\ntrain/aachen/aachen_000001")
    with pytest.raises(ValueError, match="'train/aachen/aachen_000001' is in both the train and the val split"):
        image_sequence.videos("c", source, city)
    write_splits(city, train="train/aachen/aachen_000001")
    videos = image_sequence.videos("c", source, city)
    assert {v.video_id.split("-")[0] for v in videos if v.split == "train"} == {"train__aachen__aachen_000001"}
    (city / "splits" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test.txt does not exist"):
        image_sequence.videos("c", source, city)


def test_bair_layout_natural_order_and_raw_listing(tmp_path):
    for traj in ("traj_0", "traj_1", "traj_2"):
        for i in range(12):
            write_rgb(tmp_path / "rgb" / traj / f"{i}.png", rgb_frame(i, (8, 8)))
    write_splits(tmp_path, train="traj_0", val="traj_1", test="traj_2")
    source = ImageSequenceSource(kind="image_sequence", root=tmp_path, rgb_modality="rgb", frame_pattern=r"(?P<frame>\d+)",
                                 modalities={"rgb": ImageModality(channels=3, resize="area", value_range=None, classes=None)},
                                 frame_step=1, video_frames=12, stride=12, splits="files", held_out=None, val=None)
    videos = raw_videos("bair", SimpleNamespace(source=source), tmp_path)  # rgb only: depth comes from pseudo_depth
    assert [v.video_id for v in videos] == ["traj_0-000000", "traj_1-000000", "traj_2-000000"]
    frames = videos[0].load()
    assert [int(f[0, 0, 0]) for f in frames] == [10 * i + 5 for i in range(12)], "2 < 10 (natural order)"


def test_bit_depth_and_gray_rules(tmp_path):
    cv2.imwrite(str(tmp_path / "d16.png"), np.full((4, 4), 300, np.uint16))
    with pytest.raises(ValueError, match=r"d16\.png: is uint16, not 8-bit; set the modality's value_range"):
        read_image(tmp_path / "d16.png", channels=1)
    assert (read_image(tmp_path / "d16.png", channels=1, value_range=(0, 600)) == 128).all()
    cv2.imwrite(str(tmp_path / "d8.png"), np.full((4, 4), 200, np.uint8))   # an 8-bit export of 16-bit disparity
    with pytest.raises(ValueError, match=r"d8\.png: is 8-bit, but the modality's value_range \[0, 32767\] is for "
                                         r"files of more than 8 bits \(its values would all map to 0\.\.2\)"):
        read_image(tmp_path / "d8.png", channels=1, value_range=(0, 32767))
    assert (read_image(tmp_path / "d8.png", channels=1, value_range=(0, 250)) == 204).all()   # an 8-bit range is fine
    same = np.repeat(np.arange(16, dtype=np.uint8).reshape(4, 4, 1), 3, axis=2)
    cv2.imwrite(str(tmp_path / "g3.png"), same)
    np.testing.assert_array_equal(read_image(tmp_path / "g3.png", channels=1), same[..., 0])
    write_rgb(tmp_path / "c.png", rgb_frame(1, (4, 4), salt=9))
    with pytest.raises(ValueError, match="expected a gray image"):
        read_image(tmp_path / "c.png", channels=1)
    np.testing.assert_array_equal(read_image(tmp_path / "c.png", channels=3), rgb_frame(1, (4, 4), salt=9))


# --------------------------------------------------------------------------------------------
# Leave-one-out splits (splits: leave_one_out): no split files, held_out -> test, val -> val


PLANTS = ("plant_1", "plant_2", "plant_3", "plant_4", "plant_5", "row_b/plant_10")
DATES = ("2021-05-03", "2021-05-17", "2021-05-31", "2021-06-14")


def plant_config(root, **changes) -> DatasetConfig:
    args = dict(kind="image_sequence", root=root, rgb_modality="rgb", frame_pattern=r"(?P<frame>.+)",
                modalities={"rgb": ImageModality(channels=3, resize="area", value_range=None, classes=None),
                            "depth": ImageModality(channels=1, resize="area", value_range=None, classes=None)},
                frame_step=1, video_frames=4, stride=1, splits="leave_one_out", held_out=("plant_3",),
                val=("plant_5",))
    args.update(changes)
    return DatasetConfig(source=ImageSequenceSource(**args), modalities=("rgb", "depth"), resolution=(8, 8),
                         context_frames=3, future_frames=1, rollout_frames=1, pseudo_depth=None,
                         models=None)


@pytest.fixture
def plants(tmp_path):
    """Six plants of four dates each (one nested in a row folder), rgb and depth, no split files."""
    for p, plant in enumerate(PLANTS):
        for d, date in enumerate(DATES):
            write_rgb(tmp_path / "rgb" / plant / f"{date}.png", rgb_frame(d, (8, 8), salt=p))
            (tmp_path / "depth" / plant).mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(tmp_path / "depth" / plant / f"{date}.png"), np.full((8, 8), 40 * p, np.uint8))
    return tmp_path


def splits_of(videos) -> dict[str, list[str]]:
    return {s: [v.video_id for v in videos if v.split == s] for s in ("train", "val", "test")}


def test_leave_one_out_held_out_is_test_val_is_val_the_rest_train(plants):
    assert image_sequence.sequence_ids(plant_config(plants).source, plants) == list(PLANTS)
    assert not (plants / "splits").exists(), "no split file is read"
    assert splits_of(image_sequence.videos("agri", plant_config(plants).source, plants)) == {
        "train": ["plant_1-000000", "plant_2-000000", "plant_4-000000", "row_b__plant_10-000000"],
        "val": ["plant_5-000000"], "test": ["plant_3-000000"]}
    fold = plant_config(plants, held_out=("row_b/plant_10", "plant_1"), val=("plant_2", "plant_4")).source
    assert splits_of(image_sequence.videos("agri", fold, plants)) == {
        "train": ["plant_3-000000", "plant_5-000000"], "val": ["plant_2-000000", "plant_4-000000"],
        "test": ["plant_1-000000", "row_b__plant_10-000000"]}
    (plants / "splits").mkdir()
    (plants / "splits" / "test.txt").write_text("plant_1\n")  # ignored with leave_one_out
    test = image_sequence.prepare_split("agri", plant_config(plants), interim_at(plants / "interim"), "test", {})
    assert list(test["video_id"].values) == ["plant_3-000000"]
    assert [int(v) for v in test["rgb"].values[0, :, 0, 0, 0]] == [5, 15, 25, 35], "dates in time order"
    assert (test["rgb"].values[0, ..., 2] == 2).all() and (test["depth"].values == 80).all(), "plant_3's frames"


@pytest.mark.parametrize("changes, message", [
    (dict(held_out=("plant_7",)), r"dataset 'agri': source\.held_out\[0\] 'plant_7' is not a sequence found under "
                                  r"\S+ \(6 found, closest: 'plant_5', 'plant_4', .*, \.\.\.\)$"),
    (dict(val=("plant_5", "Plant_2x")), r"source\.val\[1\] 'Plant_2x' is not a sequence found under \S+ \(6 found, "),
    (dict(held_out=("xyz",)), r"source\.held_out\[0\] 'xyz' is not a sequence found under \S+ \(6 found, e\.g\.: "
                              r"'plant_1', 'plant_2', 'plant_3', 'plant_4', 'plant_5', \.\.\.\)$"),
    (dict(held_out=PLANTS[:3], val=PLANTS[3:]), r"dataset 'agri': leave_one_out leaves no sequence for train: all 6 "
                                                r"sequences found under \S+ are in source\.held_out or source\.val$"),
])
def test_leave_one_out_errors_come_before_any_split_is_built(plants, changes, message):
    cfg = plant_config(plants, **changes)
    with pytest.raises(ValueError, match=message) as err:
        image_sequence.dataset_constants("agri", cfg, interim_at(plants / "interim"))
    assert "\n" not in str(err.value), "one line"
    with pytest.raises(ValueError, match=message):
        image_sequence.videos("agri", cfg.source, plants)


def test_leave_one_out_config_errors(plants):
    with pytest.raises(ValueError, match=r"^val\[0\]: 'plant_3' is also in held_out \(held_out and val must be "
                                         r"disjoint\)$"):
        plant_config(plants, val=("plant_3",))
    with pytest.raises(ValueError, match=r"^held_out: must list at least one sequence id with splits: leave_one_out$"):
        plant_config(plants, held_out=())
    with pytest.raises(ValueError, match=r"^val: must be null or \[\] with splits: files"):
        plant_config(plants, splits="files", held_out=None)
    assert plant_config(plants, splits="files", held_out=(), val=None).source.splits == "files"


def test_a_class_map_modality_is_stored_as_class_gray_and_decodes_back_to_its_ids(city):
    """`classes: 5`: 16-bit id maps (the depth folder reused as labels) come out as the levels
    0, 64, 128, 191, 255 (nearest resize keeps them exact), and the store's attributes give
    `syncvp.metrics.classes` the coding that takes them back to the ids."""
    from syncvp.config.loader import FieldError
    from syncvp.metrics.classes import class_coding

    for path in sorted((city / "depth").rglob("*.png")):
        frame = int(path.stem.split("_")[2])
        ids = np.full(SIZE, frame % 5, np.uint16)
        ids[:, 12:] = (frame + 1) % 5  # two classes per frame, the border inside the centre crop
        assert cv2.imwrite(str(path), ids)
    labels = ImageModality(channels=1, resize="nearest", value_range=None, classes=5)
    cfg = city_config(city, modalities={"rgb": city_config(city).source.modalities["rgb"], "depth": labels})
    ds = image_sequence.prepare_split("cityscapes", cfg, interim_at(city / "interim"), "train", {})
    coding = class_coding(ds["depth"].attrs)
    assert ds["depth"].attrs["encoding"] == "class_gray" and coding.levels == (0.0, 64.0, 128.0, 191.0, 255.0)
    assert set(np.unique(ds["depth"].values)) <= {0, 64, 128, 191, 255}
    ids = coding.to_ids(ds["depth"].values[0, 1])  # video 0, frame 1: ids 1 (left) and 2 (right)
    assert set(np.unique(ids[:, :2])) == {1} and set(np.unique(ids[:, -2:])) == {2}
    bad = sorted((city / "depth" / "train").rglob("*.png"))[0]
    assert cv2.imwrite(str(bad), np.full(SIZE, 7, np.uint16))
    with pytest.raises(ValueError, match=rf"{bad.name}: class id 7 is not below the modality's classes \(5\)"):
        image_sequence.prepare_split("cityscapes", cfg, interim_at(city / "interim"), "train", {})
    with pytest.raises(FieldError, match="a class map needs channels 1, resize nearest and value_range null"):
        ImageModality(channels=1, resize="area", value_range=None, classes=5)
    with pytest.raises(FieldError, match=r"must lie in \[2, 256\], got 1"):
        ImageModality(channels=1, resize="nearest", value_range=None, classes=1)
