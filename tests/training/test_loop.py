"""The generic loop: gradient accumulation, the NaN/inf guard, the cosine schedule, resumable
batch streams and checkpoints (RNG included)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from syncvp.io import checkpoint as ckpt_io
from syncvp.training import optim
from syncvp.training.callbacks import Checkpoint, MetricHistory, due
from syncvp.training.data import BatchStream
from syncvp.training.loop import NonFiniteLossError, Update, fit
from syncvp.training.state import TrainState

CPU = torch.device("cpu")


def linear_state(seed: int = 0, lr: float = 0.1) -> TrainState:
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return TrainState(models={"m": model}, optimizers={"m": opt})


def mse(state: TrainState):
    model = state.models["m"]

    def loss(batch, step):
        x, y = batch
        err = (model(x) - y).square().mean()
        return err, {"mse": err.detach()}

    return Update("m", loss, clip_groups=[list(model.parameters())])


def batches(n: int, size: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    data = [(torch.randn(size, 3, generator=g), torch.randn(size, 1, generator=g)) for _ in range(n)]
    return iter(data)


def test_accumulating_two_halves_equals_one_full_batch():
    full = list(batches(4, 8))
    halves = [(x[i : i + 4], y[i : i + 4]) for x, y in full for i in (0, 4)]
    a, b = linear_state(), linear_state()
    fit(a, [mse(a)], iter(full), total_steps=4, device=CPU, grad_accum=1)
    fit(b, [mse(b)], iter(halves), total_steps=4, device=CPU, grad_accum=2)
    for pa, pb in zip(a.models["m"].parameters(), b.models["m"].parameters()):
        assert torch.allclose(pa, pb, atol=1e-6)
    assert a.step == b.step == 4


def test_non_finite_loss_stops_before_the_step_and_keeps_the_last_checkpoint(tmp_path):
    state = linear_state()
    update = mse(state)
    poisoned = Update(
        "m",
        lambda batch, step: (
            update.loss(batch, step) if step < 3 else (torch.tensor(float("nan"), requires_grad=True), {})
        ),
    )
    path = tmp_path / "ckpt.pt"
    with pytest.raises(NonFiniteLossError, match="step 4: update 'm': loss is nan"):
        fit(
            state,
            [poisoned],
            batches(10, 4),
            total_steps=10,
            device=CPU,
            callbacks=[Checkpoint(path, "h", every=1, total=10)],
        )
    saved = ckpt_io.load_checkpoint(path)
    assert saved["step"] == 3 == state.step
    assert torch.equal(saved["models"]["m"]["weight"], state.models["m"].weight.detach())


def test_non_finite_gradient_is_caught():
    state = linear_state()
    model = state.models["m"]
    update = Update(
        "m",
        lambda batch, step: (
            (model(batch[0]) * float("inf")).sum() * 0 + model.weight.sum() * torch.tensor(float("inf")),
            {},
        ),
        clip_groups=[list(model.parameters())],
    )
    with pytest.raises(NonFiniteLossError):
        fit(state, [update], batches(2, 4), total_steps=2, device=CPU)
    assert state.step == 0


def test_cosine_schedule_anchors():
    assert optim.cosine_factor(0, 100, 0.01) == 1.0
    assert optim.cosine_factor(100, 100, 0.01) == pytest.approx(0.01)
    assert optim.cosine_factor(50, 100, 0.01) == pytest.approx(0.505)
    assert optim.cosine_factor(500, 100, 0.01) == pytest.approx(0.01)
    warm = [optim.cosine_factor(k, 10, 0.0, warmup_steps=4) for k in range(11)]
    assert warm[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0]) and warm[4] == 1.0
    assert warm[7] == pytest.approx(0.5) and warm[10] == pytest.approx(0.0)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sched = optim.cosine_schedule(opt, total_steps=4, min_ratio=0.0)
    lrs = []
    for _ in range(4):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([2 * (1 + np.cos(np.pi * k / 4)) / 2 for k in range(1, 5)])


def test_due_and_history():
    assert [s for s in range(1, 11) if due(s, 4, 10)] == [4, 8, 10]
    assert [s for s in range(1, 11) if due(s, 0, 10)] == [10]
    state = linear_state()
    fit(state, [mse(state)], batches(5, 4), total_steps=5, device=CPU, callbacks=[MetricHistory(2, 5)])
    rows = state.extra["history"]["train"]
    assert [r["step"] for r in rows] == [2, 4, 5] and all(r["mse"] > 0 for r in rows)


class Squares(torch.utils.data.Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, key):
        epoch, index = key
        return torch.tensor([epoch, index])


def test_batch_stream_resumes_at_the_next_item():
    stream = BatchStream(Squares(), batch_size=3, seed=7)
    straight = [next(stream) for _ in range(6)]
    first = BatchStream(Squares(), batch_size=3, seed=7)
    head = [next(first) for _ in range(2)]
    resumed = BatchStream(Squares(), batch_size=3, seed=7)
    resumed.load_state_dict(first.state_dict())
    tail = [next(resumed) for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(straight, head + tail))
    keys = torch.cat(straight)
    assert set(map(tuple, keys[:5].tolist())) == {(0, i) for i in range(5)}, "one permutation per epoch"
    with pytest.raises(ValueError, match="batch size"):
        BatchStream(Squares(), batch_size=2, seed=7).load_state_dict(first.state_dict())


def test_checkpoint_round_trip_restores_rng_and_optimizer(tmp_path):
    state = linear_state()
    state.optimizers["m"] = torch.optim.AdamW(state.models["m"].parameters(), lr=0.01)
    state.schedulers["m"] = optim.cosine_schedule(state.optimizers["m"], total_steps=10, min_ratio=0.1)
    state.generators["noise"] = torch.Generator().manual_seed(3)
    fit(state, [mse(state)], batches(3, 4), total_steps=3, device=CPU)
    state.extra["history"] = {"eval": [{"step": 3, "psnr": 20.5}]}
    path = state.save(tmp_path / "c.pt", config_hash="abc")
    after = [torch.randn(2, generator=state.generators["noise"]), torch.randn(2)]

    other = linear_state(seed=9)
    other.optimizers["m"] = torch.optim.AdamW(other.models["m"].parameters(), lr=0.01)
    other.schedulers["m"] = optim.cosine_schedule(other.optimizers["m"], total_steps=10, min_ratio=0.1)
    other.generators["noise"] = torch.Generator()
    other.restore(ckpt_io.load_checkpoint(path))
    assert other.step == 3 and other.extra["history"]["eval"][0]["psnr"] == 20.5
    assert torch.equal(torch.randn(2, generator=other.generators["noise"]), after[0])
    assert torch.equal(torch.randn(2), after[1]), "global torch RNG restored"
    assert other.optimizers["m"].state_dict()["state"][0]["step"] == 3
    assert other.schedulers["m"].last_epoch == 3


def test_checkpoint_files_are_checked(tmp_path):
    torch.save({"format": "x"}, tmp_path / "a.pt")
    with pytest.raises(ckpt_io.CheckpointError, match="not a syncvp-checkpoint"):
        ckpt_io.load_checkpoint(tmp_path / "a.pt")
    (tmp_path / "b.pt").write_bytes(b"truncated")
    with pytest.raises(ckpt_io.CheckpointError, match="b.pt is not a training checkpoint this project wrote"):
        ckpt_io.load_checkpoint(tmp_path / "b.pt")
    rng = np.random.default_rng(5)
    state = ckpt_io.capture_rng(numpy_generators={"np": rng})
    expected = rng.random(3)
    ckpt_io.restore_rng(state, numpy_generators={"np": rng})
    assert np.array_equal(rng.random(3), expected)
    assert ckpt_io.config_hash({"a": 1, "b": [1, 2]}) == ckpt_io.config_hash({"b": [1, 2], "a": 1})
    assert ckpt_io.config_hash({"a": 1}) != ckpt_io.config_hash({"a": 2})


def test_an_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    state = linear_state()
    path = state.save(tmp_path / "c.pt", "h1")

    def broken(obj, f, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        state.save(path, "h2")
    monkeypatch.undo()
    assert ckpt_io.load_checkpoint(path)["config_hash"] == "h1"
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_fit_draws_exactly_grad_accum_batches_per_step():
    state = linear_state()
    counter = itertools.count()
    data = ((torch.full((2, 3), float(next(counter))), torch.zeros(2, 1)) for _ in itertools.count())
    fit(state, [mse(state)], data, total_steps=3, device=CPU, grad_accum=2)
    assert next(counter) == 6
