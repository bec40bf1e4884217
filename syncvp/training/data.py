"""Resumable, seeded batches for training.

The order of clips is the `EpochSampler` stream (a seeded permutation per epoch, sharded by
rank) and each clip's window comes from (seed, epoch, index), so batch n is the same whatever the
number of workers. The stream's state is the number of batches handed out; restoring it restarts
the sampler at exactly the next clip, so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

import itertools
from typing import Iterator

from torch.utils.data import DataLoader, Dataset, Sampler

from syncvp.data.dataset import EpochSampler


class _SkipSampler(Sampler):
    """An infinite `EpochSampler` stream with its first `skip` keys dropped (without drawing them)."""

    def __init__(self, size: int, *, seed: int, skip: int, rank: int, world: int, shuffle: bool):
        self.size, self.seed, self.skip, self.rank, self.world, self.shuffle = size, seed, skip, rank, world, shuffle

    def __iter__(self) -> Iterator[tuple[int, int]]:
        probe = EpochSampler(self.size, seed=self.seed, rank=self.rank, world=self.world)
        epoch, offset = divmod(self.skip, probe.per_rank())
        sampler = EpochSampler(
            self.size, seed=self.seed, shuffle=self.shuffle, rank=self.rank, world=self.world, start_epoch=epoch
        )
        return itertools.islice(iter(sampler), offset, None)


class BatchStream:
    """Infinite batches of `dataset` (keys `(epoch, index)`), resumable via `state_dict`.

    Args:
        dataset: a dataset taking `(epoch, index)` keys (`ClipDataset`).
        batch_size: items per batch (per rank).
        seed: seed of the epoch permutations.
        num_workers: DataLoader workers; started with "spawn" (never fork a Prefect process).
        rank, world: this process's shard of every epoch (DDP-ready; 0/1 for one process).
        pin_memory: page-locked batches for fast, asynchronous copies to a GPU (CUDA only).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        *,
        seed: int,
        num_workers: int = 0,
        rank: int = 0,
        world: int = 1,
        shuffle: bool = True,
        pin_memory: bool = False,
    ):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.num_workers, self.rank, self.world, self.shuffle = num_workers, rank, world, shuffle
        self.pin_memory = pin_memory
        self.position = 0
        self._iter: Iterator | None = None

    def state_dict(self) -> dict:
        return {"batches": self.position, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state["batch_size"] != self.batch_size:
            raise ValueError(f"stream state has batch size {state['batch_size']}, this stream {self.batch_size}")
        self.position, self._iter = int(state["batches"]), None

    def _loader(self) -> Iterator:
        sampler = _SkipSampler(
            len(self.dataset),
            seed=self.seed,
            skip=self.position * self.batch_size,
            rank=self.rank,
            world=self.world,
            shuffle=self.shuffle,
        )
        extra = {}
        if self.num_workers > 0:
            extra = dict(multiprocessing_context="spawn", persistent_workers=True)
        return iter(
            DataLoader(
                self.dataset,
                batch_size=self.batch_size,
                sampler=sampler,
                num_workers=self.num_workers,
                pin_memory=self.pin_memory,
                **extra,
            )
        )

    def close(self) -> None:
        """Stop the loader (and its workers) and close the dataset's files in this process.

        Close a stream before another one opens the same store: two netCDF/HDF5 handles on one
        file in one process, one of them then closed, have crashed later opens of that file.
        """
        self._iter = None
        reader = getattr(self.dataset, "reader", None)
        if reader is not None:
            reader.close()

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self):
        if self._iter is None:
            self._iter = self._loader()
        batch = next(self._iter)
        self.position += 1
        return batch
