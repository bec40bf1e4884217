"""`prepare`: raw inputs -> clip stores, dispatched by source kind; plus a preview and a summary.

Each source kind has its own module (`era5_clips` for ERA5 months, `synthia`, `image_sequence`
and `video_file` for image-based sources; the synthetic video source is handled here).
`dataset_constants` computes what every split needs once (ERA5 normalisation constants), then
`prepare_split` builds one split's store.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from syncvp import viz
from syncvp.config import DatasetConfig
from syncvp.config.data import PSEUDO_DEPTH_MODALITY
from syncvp.config.loader import to_plain
from syncvp.data import era5_clips, image_sequence, store, synthia, transforms, video_file
from syncvp.data.frames import read_pseudo_depth
from syncvp.data.interim import depth_recipe
from syncvp.data.synthetic_video import CLASSES
from syncvp.io.netcdf import NETCDF_LOCK, load_dataset
from syncvp.progress import ProgressFn, no_progress

ERA5_KINDS = ("era5", "synthetic_era5")
FRAME_SOURCES = {"synthia": synthia, "image_sequence": image_sequence, "video": video_file}


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


def dataset_constants(name: str, cfg: DatasetConfig, paths) -> dict:
    """Values every split of a dataset needs, computed once: {"norm": {field: [min, max, how]}}
    for ERA5 sources, {} otherwise (JSON-able). For ERA5 sources every month of every split is
    checked first (`era5_clips.check_months`), so a bad month stops `prepare` before any store
    is built."""
    if cfg.source.kind in ERA5_KINDS:
        raw = cfg.source.input_dir(name, paths)
        era5_clips.check_months(cfg.source, tuple(cfg.modalities), raw)  # a bad month stops prepare here
        return {"norm": era5_clips.norm_constants(cfg.source.processing, tuple(cfg.modalities), raw)}
    return {}


def prepare_split(name: str, cfg: DatasetConfig, paths, split: str, constants: dict,
                  progress: ProgressFn = no_progress) -> xr.Dataset:
    """The clip store of one split of any source kind (in memory; `store.write_store` writes it)."""
    kind = cfg.source.kind
    if kind == "synthetic_video":
        return prepare_synthetic_video(name, cfg, paths.raw_dir(name) / f"{split}.nc", split, paths.interim_dir(name))
    if kind in ERA5_KINDS:
        return era5_clips.prepare_split(name, cfg, cfg.source.input_dir(name, paths), split, constants["norm"], progress)
    if kind in FRAME_SOURCES:
        return FRAME_SOURCES[kind].prepare_split(name, cfg, split, paths.interim_dir(name), progress)
    raise ValueError(f"dataset {name!r}: prepare does not handle source kind {kind!r}")


def preview(store_path: Path, out: Path, videos: int = 4, frames: int = 10) -> Path:
    """A PNG with, for a few videos, one row per modality over the first frames."""
    info = store.read_info(store_path)
    rows = []
    with NETCDF_LOCK, xr.open_dataset(store_path, engine="netcdf4", mask_and_scale=False) as ds:
        valid = ds["valid"].values if info.has_valid else None
        for v in range(min(videos, info.videos)):
            for name, meta in info.modalities.items():
                x = ds[name].values[v, :frames]
                lo, hi = (float(meta.attrs.get("norm_min", 0)), float(meta.attrs.get("norm_max", 1)))
                rows.append(viz.to_rgb(x, meta.kind, lo, hi, None if valid is None else valid[v, :frames]))
    scale = max(1, 96 // max(info.height, 1))
    return viz.save_png(out, viz.grid(rows, scale=scale))


def summary(stores: dict[str, Path]) -> dict:
    """Per split: videos, frames, size, and each modality's attributes (a JSON-able dict)."""
    out = {}
    for split, path in stores.items():
        info = store.read_info(path)
        out[split] = {"videos": info.videos, "frames": info.frames, "height": info.height, "width": info.width,
                      "modalities": {n: {"kind": m.kind, "channels": m.channels,
                                         **{k: _plain(v) for k, v in m.attrs.items()}}
                                     for n, m in info.modalities.items()}}
    return out


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
