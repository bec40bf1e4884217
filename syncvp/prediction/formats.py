"""How predicted frames are stored as PNGs, and how to read the values back.

A prediction is in model space [-1, 1] (`syncvp.io.model_space`). Each modality folder of a
prediction holds the frames and `format.json`, which says what a PNG value v means:

- `rgb` (3 channels): 8-bit RGB, v = round((x + 1) * 127.5), as the clip store holds images;
- `class` (a `class_gray` modality, e.g. semantic maps): 8-bit, 1 channel, v = the class id,
  round((x + 1) / 2 * (num_classes - 1)); `classes` names them;
- `gray16` (every other 1-channel modality: depth, fields, gray images): 16-bit, 1 channel,
  v = round((x + 1) / 2 * 65535), so x = v / 65535 * 2 - 1 and the store's 8-bit value is
  v / 257. When the clip store of the model's dataset is known, `format.json` adds the physical
  value (`physical`):
    - inverse depth (`encoding: inverse_depth`, the synthetic dataset):
      depth [m] = 1 / (1 / far + v / 65535 * (1 / near - 1 / far));
    - a field (ERA5): value [units] = norm_min + v / 65535 * (norm_max - norm_min);
  other encodings (pseudo-depth: relative inverse depth, larger = nearer) have no physical
  units; `store_meaning` repeats the clip store's description of its values.

`png_values` encodes model space, `read_values` reads a PNG back into model space and
`to_physical` applies `format.json`. The quantisation step is 2 / 65535 in model space for
16-bit PNGs (2 / 255 for RGB, one class for class maps).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from syncvp.io.atomic import atomic_path

FORMAT_FILE = "format.json"
UINT16_MAX = 65535


def frame_format(modality: str, channels: int, store: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `format.json` of one modality: from the model's channels and, when known, the clip
    store's description of the modality (its attributes and `kind`, as the dataset's
    `summary.json` lists them under `<split>.modalities.<modality>`)."""
    attrs = dict(store or {})
    kind = attrs.get("kind", "image")
    encoding = attrs.get("encoding")
    if channels == 3:
        return {
            "modality": modality,
            "png": "rgb8",
            "dtype": "uint8",
            "channels": 3,
            "model_space": "x = v / 127.5 - 1",
        }
    if channels != 1:
        raise ValueError(f"modality {modality!r} has {channels} channels; predictions are written for 1 or 3")
    if encoding == "class_gray":
        n = int(attrs["num_classes"])
        return {
            "modality": modality,
            "png": "class8",
            "dtype": "uint8",
            "channels": 1,
            "num_classes": n,
            "classes": str(attrs.get("classes", "")).split(",") if attrs.get("classes") else [],
            "model_space": f"x = v / {n - 1} * 2 - 1 (v = class id)",
        }
    out: dict[str, Any] = {
        "modality": modality,
        "png": "gray16",
        "dtype": "uint16",
        "channels": 1,
        "model_space": f"x = v / {UINT16_MAX} * 2 - 1",
        "store_uint8": f"v / {UINT16_MAX} * 255" if kind == "image" else None,
    }
    if kind == "field":
        lo, hi = float(attrs["norm_min"]), float(attrs["norm_max"])
        units = str(attrs.get("units", ""))
        out.update(
            physical={"kind": "linear", "units": units, "offset": lo, "scale": (hi - lo) / UINT16_MAX},
            formula=f"{modality} [{units}] = {lo!r} + v / {UINT16_MAX} * ({hi!r} - {lo!r})",
        )
    elif encoding == "inverse_depth":
        near, far = float(attrs["depth_near"]), float(attrs["depth_far"])
        out.update(
            physical={"kind": "inverse_depth", "units": "m", "near": near, "far": far},
            formula=f"depth [m] = 1 / (1 / {far!r} + v / {UINT16_MAX} * (1 / {near!r} - 1 / {far!r}))",
        )
    if out["store_uint8"] is None:
        del out["store_uint8"]
    if attrs.get("meaning"):
        out["store_meaning"] = f"the clip store's value: {attrs['meaning']}"
    if encoding:
        out["encoding"] = str(encoding)
    return out


def png_values(x: np.ndarray, fmt: Mapping[str, Any]) -> np.ndarray:
    """Model-space frames [..., H, W, C] -> the PNG values `fmt` describes (uint8 or uint16)."""
    u = (np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0
    if fmt["png"] == "rgb8":
        return np.round(u * 255.0).astype(np.uint8)
    if fmt["png"] == "class8":
        return np.round(u * (fmt["num_classes"] - 1)).astype(np.uint8)
    return np.round(u * UINT16_MAX).astype(np.uint16)


def model_values(v: np.ndarray, fmt: Mapping[str, Any]) -> np.ndarray:
    """PNG values -> model space float32 (the inverse of `png_values` up to its rounding)."""
    top = {"rgb8": 255.0, "class8": float(fmt.get("num_classes", 2) - 1), "gray16": float(UINT16_MAX)}[fmt["png"]]
    return (np.asarray(v, dtype=np.float64) / top * 2.0 - 1.0).astype(np.float32)


def to_physical(v: np.ndarray, fmt: Mapping[str, Any]) -> np.ndarray:
    """16-bit PNG values -> physical units by `fmt["physical"]` (depth in m, a field in its units)."""
    phys = fmt.get("physical")
    if phys is None:
        raise ValueError(f"{fmt['modality']!r} ({fmt.get('encoding', fmt['png'])}) has no physical units")
    v = np.asarray(v, dtype=np.float64)
    if phys["kind"] == "linear":
        return phys["offset"] + v * phys["scale"]
    near, far = phys["near"], phys["far"]
    return 1.0 / (1.0 / far + v / UINT16_MAX * (1.0 / near - 1.0 / far))


def write_png(path: str | Path, values: np.ndarray) -> Path:
    """One frame [H, W, C] of uint8 or uint16 values as a PNG, atomically (RGB in RGB order)."""
    path = Path(path)
    image = values[..., ::-1] if values.shape[-1] == 3 else values[..., 0]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise OSError(f"could not encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path


def read_png(path: str | Path) -> np.ndarray:
    """A PNG written by `write_png` -> its values [H, W, C] (uint8 or uint16, RGB order)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: not a readable image")
    return img[..., None] if img.ndim == 2 else img[..., ::-1]


def write_format(folder: str | Path, fmt: Mapping[str, Any]) -> Path:
    """`folder/format.json`, atomically."""
    path = Path(folder) / FORMAT_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(fmt, indent=2) + "\n")
    return path


def read_format(folder: str | Path) -> dict[str, Any]:
    """The `format.json` of a predicted modality folder."""
    return json.loads((Path(folder) / FORMAT_FILE).read_text())
