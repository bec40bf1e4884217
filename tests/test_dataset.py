"""ClipDataset and EpochSampler: windows from (seed, epoch, index), worker-count invariance."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from syncvp.data import store, transforms
from syncvp.data.dataset import ClipDataset, EpochSampler


@pytest.fixture(scope="module")
def toy_store(tmp_path_factory):
    rng = np.random.default_rng(1)
    v, f, h, w = 6, 20, 8, 8
    rgb = rng.integers(0, 256, (v, f, h, w, 3), dtype=np.uint8)
    rgb[:, :, 0, 0, 0] = np.arange(f, dtype=np.uint8)  # frame index marker
    t2m = rng.uniform(270, 290, (v, f, h, w)).astype(np.float32)
    valid = np.ones((v, f, h, w), np.uint8)
    valid[:, :, -1] = 0
    t2m[:, :, -1] = np.nan
    ds = store.build_dataset(
        {"rgb": rgb, "t2m": t2m},
        dataset="toy",
        split="train",
        modality_attrs={"t2m": {"units": "K", "norm_min": 270.0, "norm_max": 290.0}},
        valid=valid,
    )
    path = tmp_path_factory.mktemp("store") / "train.nc"
    store.write_store(path, ds)
    return path, rgb, t2m


def test_item_layout_and_ranges(toy_store):
    path, rgb, t2m = toy_store
    ds = ClipDataset(path, ["rgb", "t2m"], frames=10, seed=0)
    item = ds[(0, 3)]
    assert item["rgb"].shape == (3, 10, 8, 8) and item["t2m"].shape == (1, 10, 8, 8)
    assert item["valid"].shape == (1, 10, 8, 8) and item["valid"].dtype == torch.bool
    s = item["start"]
    np.testing.assert_allclose(item["rgb"].numpy(), rgb[3, s : s + 10].transpose(3, 0, 1, 2) / 127.5 - 1, atol=1e-6)
    assert item["rgb"].min() >= -1 and item["rgb"].max() <= 1
    x = item["t2m"].numpy()[0]
    assert (x[:, -1] == -1).all(), "invalid points become -1 (normalised 0)"
    back = transforms.model_to_field(x[:, :-1], 270.0, 290.0)
    np.testing.assert_allclose(back, t2m[3, s : s + 10, :-1], rtol=1e-6)


def test_window_is_a_function_of_seed_epoch_index(toy_store):
    path = toy_store[0]
    a = ClipDataset(path, ["rgb"], frames=10, seed=7)
    b = ClipDataset(path, ["rgb"], frames=10, seed=7)
    assert [a[(e, i)]["start"] for e in range(3) for i in range(6)] == [
        b[(e, i)]["start"] for e in range(3) for i in range(6)
    ]
    starts = {a[(e, 0)]["start"] for e in range(20)}
    assert len(starts) > 3, "different epochs draw different windows"
    c = ClipDataset(path, ["rgb"], frames=10, seed=8)
    assert [a[(0, i)]["start"] for i in range(6)] != [c[(0, i)]["start"] for i in range(6)]
    assert a[2]["start"] == a[(0, 2)]["start"]


def test_first_and_all_windows(toy_store):
    path = toy_store[0]
    first = ClipDataset(path, ["rgb"], frames=10, seed=0, window="first")
    assert all(first[i]["start"] == 0 for i in range(len(first)))
    every = ClipDataset(path, ["rgb"], frames=10, seed=0, window="all", stride=5)
    assert len(every) == 6 * 3
    assert [every[i]["start"] for i in range(3)] == [0, 5, 10]
    with pytest.raises(ValueError, match="need longer videos"):
        ClipDataset(path, ["rgb"], frames=21, seed=0)


def _batches(path, workers: int):
    ds = ClipDataset(path, ["rgb", "t2m"], frames=6, seed=3)
    sampler = EpochSampler(len(ds), seed=3, epochs=3)
    loader = DataLoader(
        ds, batch_size=4, sampler=sampler, num_workers=workers, multiprocessing_context="spawn" if workers else None
    )
    return list(loader)


def test_same_batches_whatever_the_worker_count(toy_store):
    path = toy_store[0]
    plain, parallel = _batches(path, 0), _batches(path, 2)
    assert len(plain) == len(parallel) == 5
    for a, b in zip(plain, parallel):
        assert torch.equal(a["video"], b["video"]) and torch.equal(a["start"], b["start"])
        assert torch.equal(a["rgb"], b["rgb"]) and torch.equal(a["t2m"], b["t2m"])


def test_sampler_epochs_and_sharding():
    s = EpochSampler(10, seed=1, epochs=2)
    keys = list(s)
    assert len(keys) == len(s) == 20
    assert sorted(i for e, i in keys if e == 0) == list(range(10))
    assert [i for e, i in keys if e == 0] != [i for e, i in keys if e == 1]
    shards = [list(EpochSampler(10, seed=1, rank=r, world=3, epochs=1)) for r in range(3)]
    assert all(len(sh) == 4 for sh in shards)
    covered = {i for sh in shards for _, i in sh}
    assert covered == set(range(10))
