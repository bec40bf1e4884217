"""Raw inputs of every real source kind, written with real encoders, and the params that point a
pipeline at them (as a user configures them: README "Real data sources").

| dataset | kind | raw files |
| --- | --- | --- |
| `clips` | `video` | mp4 (mp4v) and avi (MJPG, XVID) files of several lengths, sizes and frame rates; depth by Depth-Anything-V2 |
| `frames` | `image_sequence` | RGB-only PNG sequences (BAIR-like, unpadded numbers) and JPEG series (dated, nested folders); depth by Depth-Anything-V2 |
| `synthia` | `synthia` | SYNTHIA-SEQS tree: RGB PNGs + 16-bit label PNGs |
| `cityscapes` | `image_sequence` | `leftImg8bit_sequence` + 16-bit `disparity_sequence`, renamed to `rgb/` and `depth/` |
| `era5` | `era5` | monthly netCDF from the real cdsapi client talking to a local CDS stand-in |

`EXPECTED[name]` holds the stored videos per split, worked out by hand from the files below.
"""

from __future__ import annotations

from pathlib import Path

from tests.data.source_trees import moving_scene, write_cityscapes, write_clip, write_frames, write_synthia
from tests.models.depth_anything_weights import save_random_checkpoint

SIZE = [16, 16]  # every dataset's stored resolution (the shrunk models' size)
CLIP = dict(context_frames=2, future_frames=4, rollout_frames=8)  # 10 frames per stored video
PSEUDO_DEPTH = {
    "encoder": "vits",
    "input_size": 28,
    "batch_size": 8,
    "normalization": "per_frame",
    "precision": "float32",
    "task_runner": {"kind": "threads", "workers": 1, "address": None},
}

# file -> (frames, file fps, (height, width), fourcc). The `clips` source keeps 5 fps after
# dropping 0.4 s at both ends of every file, and cuts videos of 10 frames every 5 frames:
# drive_a (8 s): train [0, 5) s -> output frames 2..24 (23) -> 3 videos; val [5, end) -> 25..37 (13) -> 1
# drive_b, drive_c, drive_e (3 s): frames 2..12 (11) -> 1 video; drive_d (4 s): 2..17 (16) -> 2 videos
VIDEOS = {
    "drive_a.mp4": (80, 10, (48, 64), "mp4v"),
    "b/drive_b.avi": (36, 12, (40, 72), "MJPG"),
    "drive_c.avi": (45, 15, (36, 48), "XVID"),
    "drive_d.mp4": (40, 10, (44, 60), "mp4v"),
    "b/drive_e.avi": (33, 11, (52, 40), "MJPG"),  # portrait
}


def _segment(file: str, start_s: float = 0, end_s: float | None = None) -> dict:
    return {"file": file, "start_s": start_s, "end_s": end_s}


SEGMENTS = {
    "train": [_segment("drive_a.mp4", 0, 5.0), _segment("b/drive_b.avi")],
    "val": [_segment("drive_a.mp4", 5.0), _segment("drive_c.avi")],
    "test": [_segment("drive_d.mp4"), _segment("b/drive_e.avi")],
}

# sequence folder -> (frames, (height, width), extension). Videos of 10 frames every 3 frames:
# 10 or 11 frames -> 1 video, 12 -> 1, 13 -> 2.
FRAME_SEQUENCES = {
    "arm_01": (12, (40, 48), ".png"),
    "plots/plot_a": (10, (36, 64), ".jpg"),
    "plots/plot_b": (11, (36, 64), ".jpg"),
    "arm_02": (10, (48, 64), ".png"),
    "arm_03": (13, (40, 48), ".png"),
    "fields/plot_c": (10, (30, 40), ".jpeg"),
}
FRAME_SPLITS = {"train": ["arm_01", "plots"], "val": ["arm_02"], "test": ["arm_03", "fields/plot_c"]}

# sequence -> (frames, (height, width)); videos of 10 frames every 4: 10 -> 1, 14 -> 2
SYNTHIA = {
    "SYNTHIA-SEQS-01-DAWN": (14, (24, 32)),
    "SYNTHIA-SEQS-02-NIGHT": (10, (30, 40)),
    "SYNTHIA-SEQS-05-DAWN": (10, (24, 32)),
    "SYNTHIA-SEQS-06-SUMMER": (14, (24, 32)),
}
SYNTHIA_SPLITS = {
    "train": ["SYNTHIA-SEQS-01-DAWN", "SYNTHIA-SEQS-02-NIGHT"],
    "val": ["SYNTHIA-SEQS-05-DAWN"],
    "test": ["SYNTHIA-SEQS-06-SUMMER"],
}

# (split, city, snippet, frames); videos of 10 frames every 10: 10..19 frames -> 1 video
CITYSCAPES = [
    ("train", "aachen", 0, 12),
    ("train", "aachen", 1, 10),
    ("train", "bochum", 3, 11),
    ("val", "lindau", 0, 10),
    ("test", "berlin", 0, 10),
    ("test", "berlin", 2, 12),
]

# ERA5-Land 16 x 16 points at 0.1 degrees, 4 hours a day; videos of 10 steps every 40 steps:
# January and March (124 steps) and February 2020 (116) -> 3 videos each
ERA5_MONTHS = {"train": ["2020-01"], "val": ["2020-02"], "test": ["2020-03"]}

EXPECTED = {  # dataset -> videos per split
    "clips": {"train": 4, "val": 2, "test": 3},
    "frames": {"train": 3, "val": 1, "test": 3},
    "synthia": {"train": 3, "val": 1, "test": 2},
    "cityscapes": {"train": 3, "val": 1, "test": 2},
    "era5": {"train": 3, "val": 3, "test": 3},
}
PSEUDO = ("clips", "frames")  # the RGB-only datasets, depth by the pseudo_depth stage
TRAINED = ("clips", "frames", "synthia", "cityscapes", "era5")  # trained and evaluated (pipeline.train)


def write_inputs(base: Path) -> dict[str, Path]:
    """Every raw input under `base`; returns the folders (and the weights file) params name."""
    roots = {name: base / name for name in ("clips", "frames", "synthia", "cityscapes")}
    for seed, (rel, (frames, fps, size, codec)) in enumerate(VIDEOS.items()):
        write_clip(roots["clips"] / rel, moving_scene(frames, size, seed)[0], fps, codec)
    for seed, (seq, (frames, size, ext)) in enumerate(FRAME_SEQUENCES.items()):
        names = (
            [str(i) for i in range(frames)]
            if ext == ".png"
            else [f"2021-{5 + i // 4:02d}-{1 + 7 * (i % 4):02d}" for i in range(frames)]
        )
        write_frames(roots["frames"] / "rgb" / seq, moving_scene(frames, size, 10 + seed)[0], names, ext)
    write_split_files(roots["frames"], FRAME_SPLITS)
    for seq, (frames, size) in SYNTHIA.items():
        write_synthia(roots["synthia"], seq, frames, size)
    for seed, (split, city, snippet, frames) in enumerate(CITYSCAPES):
        write_cityscapes(roots["cityscapes"], split, city, snippet, frames, size=(32, 64), seed=20 + seed)
    write_split_files(roots["cityscapes"], {s: [s] for s in ("train", "val", "test")})
    weights = save_random_checkpoint(base / "weights" / "depth_anything_v2_vits.pth", "vits")
    return {**roots, "weights": weights}


def write_split_files(root: Path, splits: dict[str, list[str]]) -> None:
    (root / "splits").mkdir(parents=True, exist_ok=True)
    for split, entries in splits.items():
        lines = ["# sequences (or folders of sequences)", *entries]
        (root / "splits" / f"{split}.txt").write_text("\n".join(lines) + "\n")


def datasets(roots: dict[str, Path]) -> dict[str, dict]:
    """The `datasets` entries of the real sources, as a user writes them in params.yaml."""
    rgb = {"channels": 3, "resize": "area", "value_range": None, "classes": None}
    return {
        "clips": {
            "source": {
                "kind": "video",
                "root": str(roots["clips"]),
                "fps": 5,
                "trim_s": [0.4, 0.4],
                "video_frames": 10,
                "stride": 5,
                "resize": "area",
                "splits": SEGMENTS,
            },
            "modalities": ["rgb", "depth"],
            "resolution": SIZE,
            **CLIP,
            "pseudo_depth": PSEUDO_DEPTH,
            "models": None,
        },
        "frames": {
            "source": {
                "kind": "image_sequence",
                "root": str(roots["frames"]),
                "modalities": {"rgb": rgb},
                "rgb_modality": "rgb",
                "frame_pattern": "(?P<frame>.+)",
                "frame_step": 1,
                "video_frames": 10,
                "stride": 3,
                "splits": "files",
                "held_out": None,
                "val": None,
            },
            "modalities": ["rgb", "depth"],
            "resolution": SIZE,
            **CLIP,
            "pseudo_depth": PSEUDO_DEPTH,
            "models": None,
        },
        "synthia": {
            "source": {
                "kind": "synthia",
                "root": str(roots["synthia"]),
                "camera": "Stereo_Left/Omni_F",
                "splits": SYNTHIA_SPLITS,
                "frame_step": 1,
                "video_frames": 10,
                "stride": 4,
                "resize": "area",
            },
            "modalities": ["rgb", "semantic"],
            "resolution": SIZE,
            **CLIP,
            "pseudo_depth": None,
            "models": None,
        },
        "cityscapes": {
            "source": {
                "kind": "image_sequence",
                "root": str(roots["cityscapes"]),
                "modalities": {
                    "rgb": {**rgb, "resize": "bilinear"},
                    "depth": {"channels": 1, "resize": "bilinear", "value_range": [0, 32767], "classes": None},
                },
                "rgb_modality": "rgb",
                "frame_pattern": r"(?P<sequence>[a-z]+_\d+)_(?P<frame>\d+)_(leftImg8bit|disparity)",
                "frame_step": 1,
                "video_frames": 10,
                "stride": 10,
                "splits": "files",
                "held_out": None,
                "val": None,
            },
            "modalities": ["rgb", "depth"],
            "resolution": SIZE,
            **CLIP,
            "pseudo_depth": None,
            "models": None,
        },
        "era5": {
            "source": {
                "kind": "era5",
                "months": [m for ms in ERA5_MONTHS.values() for m in ms],
                "hours": [0, 6, 12, 18],
                "area": [47.0, 7.0, 45.5, 8.5],
                "step": 0.1,
                "retries": 0,
                "retry_delay_s": 0,
                "workers": 2,
                "processing": {
                    "normalization": "train",
                    "fixed_range": None,
                    "crop": None,
                    "resize": "area",
                    "video_frames": 10,
                    "stride": 40,
                    "splits": ERA5_MONTHS,
                },
            },
            "modalities": ["t2m", "sp"],
            "resolution": SIZE,
            **CLIP,
            "pseudo_depth": None,
            "models": None,
        },
    }


def configure(params: dict, roots: dict[str, Path]) -> dict:
    """`params` with the real datasets added and trained, and the Depth-Anything-V2 ViT-S weights.

    `train_joint.patterns: explicit` names modalities (rgb, depth), so datasets with other ones
    (SYNTHIA's semantic, ERA5's fields) train with the paper's `official` patterns."""
    params["datasets"].update(datasets(roots))
    params["train_joint"].update(patterns="official", explicit=None)
    params["weights"]["depth_anything_vits"] = str(roots["weights"])
    params["pipeline"]["train"] = [*params["pipeline"]["train"], *TRAINED]
    return params
