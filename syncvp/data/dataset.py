"""One `ClipDataset` for any modality set, and the sampler that feeds it.

An item is a window of consecutive frames of one video, as a dict of modality -> float tensor
[C, T, H, W] in [-1, 1], plus `valid` [1, T, H, W] (bool) when the store has a mask, and the
`video` index and window `start`. The window start is drawn from the stream
(seed, epoch, video): the same item is the same clip whatever the worker count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from syncvp.data import transforms
from syncvp.data.store import StoreReader
from syncvp.seeding import numpy_rng

Window = Literal["random", "first", "all"]


class ClipDataset(Dataset):
    """Windows of `frames` frames from a clip store.

    Args:
        path: the store (`<processed>/<dataset>/<split>.nc`).
        modalities: names to load, in order.
        frames: window length (context + future for diffusion, the AE length for autoencoders).
        seed: base seed of the window-start stream.
        window: "random" (one random window per video per epoch), "first" (frames 0..frames-1,
            the evaluation protocol) or "all" (every window with the given stride; for metrics).
        stride: step between windows when `window="all"`.
        preload: read the requested modalities into memory once.
    """

    def __init__(self, path: str | Path, modalities: Sequence[str], frames: int, *, seed: int,
                 window: Window = "random", stride: int = 1, preload: bool = False):
        self.reader = StoreReader(path, modalities, preload=preload)
        info = self.reader.info
        if frames > info.frames:
            raise ValueError(f"{path}: windows of {frames} frames need longer videos (the store has {info.frames})")
        self.modalities = tuple(modalities)
        self.frames, self.seed, self.window, self.stride = frames, seed, window, stride
        self.starts_per_video = (info.frames - frames) // stride + 1 if window == "all" else 1

    @property
    def info(self):
        return self.reader.info

    def __len__(self) -> int:
        return self.info.videos * self.starts_per_video

    def _locate(self, key: int | tuple[int, int]) -> tuple[int, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        if self.window == "all":
            video, k = divmod(index, self.starts_per_video)
            return video, k * self.stride
        if self.window == "first":
            return index, 0
        high = self.info.frames - self.frames + 1
        return index, int(numpy_rng(self.seed, "window", epoch, index).integers(0, high))

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        video, start = self._locate(key)
        valid = self.reader.read("valid", video, start, self.frames) if self.info.has_valid else None
        item: dict = {"video": video, "start": start}
        for name in self.modalities:
            meta = self.info.modalities[name]
            raw = self.reader.read(name, video, start, self.frames)
            if meta.kind == "image":
                x = transforms.image_to_model(raw)
            else:
                mask = valid if raw.ndim == 3 else (valid[..., None] if valid is not None else None)
                x = transforms.field_to_model(raw, float(meta.attrs["norm_min"]), float(meta.attrs["norm_max"]), mask)
            x = x[..., None] if x.ndim == 3 else x  # [T, H, W, C]
            item[name] = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 0, 1, 2)))
        if valid is not None:
            item["valid"] = torch.from_numpy(valid.astype(bool))[None]
        return item


class EpochSampler(Sampler):
    """Yields `(epoch, index)` keys: a seeded permutation per epoch, sharded across ranks.

    Every rank sees the same number of items per epoch (the permutation is padded by wrapping).
    Infinite unless `epochs` is given. Passing the epoch inside the key (rather than calling
    `set_epoch`) keeps window draws correct in persistent DataLoader workers.
    """

    def __init__(self, size: int, *, seed: int, shuffle: bool = True, rank: int = 0, world: int = 1,
                 start_epoch: int = 0, epochs: int | None = None):
        if size < 1:
            raise ValueError("cannot sample from an empty dataset")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.rank, self.world = rank, world
        self.start_epoch, self.epochs = start_epoch, epochs

    def per_rank(self) -> int:
        return -(-self.size // self.world)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        order = numpy_rng(self.seed, "perm", epoch).permutation(self.size) if self.shuffle else np.arange(self.size)
        total = self.per_rank() * self.world
        order = np.resize(order, total)
        return order[self.rank::self.world]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.start_epoch
        while self.epochs is None or epoch < self.start_epoch + self.epochs:
            for index in self.epoch_indices(epoch):
                yield epoch, int(index)
            epoch += 1

    def __len__(self) -> int:
        if self.epochs is None:
            raise TypeError("an infinite EpochSampler has no length")
        return self.per_rank() * self.epochs
