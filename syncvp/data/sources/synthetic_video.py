"""The `synthetic_video` source kind: the scenes the `synthesize` stage renders
(`syncvp.data.synthetic_video`), one netCDF file per split holding rgb, metric depth and class
ids, made into clip stores of the dataset's modalities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from syncvp.config import DatasetConfig
from syncvp.config.data import PSEUDO_DEPTH_MODALITY
from syncvp.config.layout import split_file
from syncvp.config.loader import to_plain
from syncvp.data import store, transforms
from syncvp.data.frame_sources import read_pseudo_depth
from syncvp.data.interim import depth_recipe
from syncvp.data.raw import RawVideo
from syncvp.data.synthetic_video import CLASSES
from syncvp.io.netcdf import NETCDF_LOCK, load_dataset
from syncvp.progress import ProgressFn, no_progress


def inverse_depth_uint8(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Metric depth -> uint8 inverse depth over [near, far] (255 = near, 0 = far; disparity-like)."""
    inv = (1.0 / np.clip(depth, near, far) - 1.0 / far) / (1.0 / near - 1.0 / far)
    return np.round(np.clip(inv, 0.0, 1.0) * 255.0).astype(np.uint8)


def _synthetic_pseudo_depth(ds: xr.Dataset, interim_dir: Path) -> tuple[np.ndarray, dict]:
    """The `pseudo_depth` stage's depth of every video of a raw synthetic split, [V*F, H, W] uint8,
    and the one recipe they were all made with."""
    recipe, out = None, []
    for vid in (str(v) for v in ds["video_id"].values):
        depth, attrs = read_pseudo_depth(interim_dir, vid, ds["rgb"].shape[1:4])
        got = depth_recipe(attrs)
        if recipe is not None and got != recipe:
            raise ValueError(f"video {vid!r}: pseudo-depth made differently ({got}) from the others ({recipe}); "
                             "rerun the `pseudo_depth` stage")
        recipe = got
        out.append(depth)
    return np.concatenate(out), recipe


def prepare_synthetic_video(name: str, cfg: DatasetConfig, raw: Path, split: str,
                            interim_dir: Path | None = None) -> xr.Dataset:
    """Raw synthetic split (rgb, metric depth, class ids) -> clip store of `cfg.modalities`.

    With `cfg.pseudo_depth` set, `depth` is the `pseudo_depth` stage's estimate from the RGB
    frames (read from `interim_dir`) instead of the exact depth: the same scenes with exact and
    estimated depth measure what pseudo-labels cost.
    """
    src = cfg.source
    near, far = src.depth_range
    ds = load_dataset(raw, mask_and_scale=False)
    size = tuple(cfg.resolution)
    arrays, attrs = {}, {}
    for m in cfg.modalities:
        frames = ds[m].values.reshape((-1,) + ds[m].shape[2:])  # [V*F, H, W(, C)]
        if m == PSEUDO_DEPTH_MODALITY and cfg.pseudo_depth is not None:
            if interim_dir is None:
                raise ValueError(f"dataset {name!r} has pseudo_depth: prepare needs the pseudo_depth stage's folder")
            estimate, recipe = _synthetic_pseudo_depth(ds, Path(interim_dir))
            out = transforms.resize_frames(estimate, size, "area")  # as the RGB frames it came from
            attrs[m] = {"encoding": "pseudo_depth", "pseudo_depth": json.dumps(recipe, sort_keys=True)}
        elif m == "rgb":
            out = transforms.resize_frames(frames, size, "area")
            attrs[m] = {"encoding": "rgb"}
        elif m == "depth":
            out = inverse_depth_uint8(transforms.resize_frames(frames, size, "nearest"), near, far)
            attrs[m] = {"encoding": "inverse_depth", "depth_near": near, "depth_far": far,
                        "meaning": "255 * (1/z - 1/far) / (1/near - 1/far), z = planar camera depth in metres"}
        else:
            out = transforms.class_gray(transforms.resize_frames(frames, size, "nearest"), len(CLASSES))
            attrs[m] = {"encoding": "class_gray", "num_classes": len(CLASSES), "classes": ",".join(CLASSES)}
        arrays[m] = out.reshape(ds[m].shape[:2] + out.shape[1:])
    prov = {"source": to_plain(src), "resolution": list(size), "raw": str(raw)}
    return store.build_dataset(arrays, dataset=name, split=split, modality_attrs=attrs,
                               video_ids=[str(v) for v in ds["video_id"].values], provenance=prov)


def dataset_constants(name: str, cfg, paths) -> dict:
    """What every split needs, computed once: nothing for this kind."""
    return {}


def prepare_split(name: str, cfg, paths, split: str, constants: dict,
                  progress: ProgressFn = no_progress) -> xr.Dataset:
    """The clip store of one split, from `<paths.raw>/<dataset>/<split>.nc`."""
    return prepare_synthetic_video(name, cfg, split_file(paths.raw_dir(name), split), split, paths.interim_dir(name))


def _store_video(path: Path, index: int) -> np.ndarray:
    with NETCDF_LOCK, xr.open_dataset(path, engine="netcdf4", mask_and_scale=False) as ds:
        return ds["rgb"].values[index]


def raw_videos(name: str, cfg, raw_dir: Path) -> list[RawVideo]:
    """The rendered RGB videos under `raw_dir`, split by split (ids `<split>-<index>`)."""
    out = []
    for split, count in cfg.source.videos.as_dict().items():
        path = split_file(raw_dir, split)
        for i in range(count):
            out.append(RawVideo(split=split, video_id=f"{split}-{i:04d}", files=(path,),
                                load=lambda p=path, i=i: _store_video(p, i)))
    return out
