"""The spread of N >= 2 predicted trajectories: `spread.npz` and `spread.png` beside the frames.

Per modality and lead frame, per pixel: sqrt(mean over channels of the unbiased variance over the
N trajectories) (for one channel: the std over trajectories), in the units of `format.json`:

- a modality with physical units (`physical` in format.json: a field in K / Pa, the synthetic
  dataset's depth in m): the spread of the trajectories' physical values (as read back from their
  16-bit PNGs);
- every other modality (RGB, gray, pseudo-depth, class maps): 0-255 levels, (x + 1) * 127.5 of the
  model-space prediction x.

`spread.npz`: `<modality>` float32 [lead frames, H, W], `units.<modality>` (a string), `lead`
(1 = the first predicted frame), `trajectories` (N). `spread.png`: a row per modality, a column per
lead frame, turbo over [0, the modality's largest spread rounded up] with a colour bar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from syncvp.figures import spread_grid, spread_scale
from syncvp.io.atomic import atomic_path
from syncvp.prediction import formats
from syncvp.viz import save_png

IMAGE_UNITS = "0-255"


def spread_of(video: np.ndarray, fmt: Mapping[str, Any]) -> tuple[np.ndarray, str]:
    """Model-space trajectories [N, T, H, W, C] (N >= 2) -> (float32 [T, H, W] spread, its units)."""
    if video.shape[0] < 2:
        raise ValueError(f"a spread needs N >= 2 trajectories, got {video.shape[0]}")
    if fmt.get("physical"):
        values = formats.to_physical(formats.png_values(video, fmt), fmt)
        units = fmt["physical"]["units"]
    else:
        values, units = (video.astype(np.float64) + 1.0) * 127.5, IMAGE_UNITS
    return np.sqrt(values.var(axis=0, ddof=1).mean(axis=-1)).astype(np.float32), units


def write_spread(out_dir: Path, future: Mapping[str, np.ndarray], fmts: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """`spread.npz` and `spread.png` in `out_dir` for model-space trajectories {m: [N, T, H, W, C]}."""
    maps = {m: spread_of(v, fmts[m]) for m, v in future.items()}
    n, t = next(iter(future.values())).shape[:2]
    arrays = {m: s for m, (s, _) in maps.items()} | {f"units.{m}": np.array(u) for m, (_, u) in maps.items()}
    npz = out_dir / "spread.npz"
    with atomic_path(npz) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, lead=np.arange(1, t + 1), trajectories=np.array(n), **arrays)
    rows = [([m, f"std over {n}"], s, spread_scale(s), u) for m, (s, u) in maps.items()]
    png = save_png(out_dir / "spread.png", spread_grid(rows, f"spread over {n} trajectories per pixel and lead frame"))
    return [npz, png]
