"""Raw RGB videos of a dataset, before `prepare`: what per-video data stages (Depth-Anything-V2
pseudo-labels) iterate over.

Each source kind that has RGB frames lists its videos as `RawVideo`s (`raw_videos` of its module
in `syncvp.data.sources`); `RawVideo.load()` returns RGB uint8 [T, H, W, 3] at the source's
native resolution, and `RawVideo.files` names the files it reads (their content keys per-video
caches).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class RawVideo:
    """One raw video: where it comes from and how to read its RGB frames."""

    split: str
    video_id: str
    files: tuple[Path, ...]
    load: Callable[[], np.ndarray]
