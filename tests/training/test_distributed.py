"""Data-parallel training: 2 gloo processes through the generic `fit` equal one process with the
same global batch; ranks hold identical weights; a 2-process resume equals an uninterrupted run;
the DDP wrapper path equals the gradient-averaging path."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from syncvp.io import checkpoint as ckpt_io
from syncvp.seeding import torch_generator
from syncvp.training import distributed
from syncvp.training.callbacks import Checkpoint
from syncvp.training.data import BatchStream
from syncvp.training.loop import Update, fit
from syncvp.training.state import TrainState

CPU = torch.device("cpu")
GLOBAL_BATCH, STEPS, WORLD = 8, 6, 2


class Table(torch.utils.data.Dataset):
    """20 fixed (x, y) pairs addressed by (epoch, index) keys like `ClipDataset`."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x, self.y = torch.randn(20, 4, generator=g), torch.randn(20, 1, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, key):
        return self.x[key[1]], self.y[key[1]]


def make_state(world: int, rank: int, *, noisy: bool) -> TrainState:
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    stream = BatchStream(Table(), distributed.per_rank_batch(GLOBAL_BATCH, world), seed=3, rank=rank, world=world)
    generators = {"noise": torch_generator(7, "noise", *distributed.rank_salt())} if noisy else {}
    return TrainState(models={"m": model}, optimizers={"m": opt}, generators=generators, streams={"train": stream})


def update(state: TrainState, forward=None) -> Update:
    model, gen = state.models["m"], state.generators.get("noise")
    forward = forward or model

    def loss(batch, step):
        x, y = batch
        if gen is not None:  # a random draw per clip, as diffusion noise is
            x = x + 0.1 * torch.randn(x.shape, generator=gen)
        err = (forward(x) - y).square().mean()
        return err, {"mse": err.detach()}

    return Update("m", loss, clip_groups=[list(model.parameters())], max_grad_norm=1.0)


def train(state: TrainState, steps: int, *, forward=None, sync=None, callbacks=()) -> dict:
    fit(
        state,
        [update(state, forward)],
        state.streams["train"],
        total_steps=steps,
        device=CPU,
        grad_accum=2,
        sync_gradients=sync,
        callbacks=callbacks,
        show_bar=False,
    )
    return {k: v.detach().clone() for k, v in state.models["m"].state_dict().items()}


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    distributed.init(CPU)
    try:
        results = {"plain": train(make_state(WORLD, rank, noisy=False), STEPS)}
        state = make_state(WORLD, rank, noisy=False)
        results["ddp"] = train(state, STEPS, forward=distributed.wrap_ddp(state.models["m"]), sync=False)
        results["noisy"] = train(make_state(WORLD, rank, noisy=True), STEPS)
        path = os.path.join(out, "ckpt.pt")
        train(make_state(WORLD, rank, noisy=True), 3, callbacks=[Checkpoint(path, "h", every=3, total=STEPS)])
        resumed = make_state(WORLD, rank, noisy=True)
        resumed.restore(ckpt_io.load_checkpoint(path))  # every rank reads rank 0's file
        results["resumed"] = train(resumed, STEPS)
        results["noise_draw"] = torch.randn(3, generator=resumed.generators["noise"])
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)], out


def assert_close(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol), (k, (a[k] - b[k]).abs().max())


def test_two_ranks_hold_identical_weights(two_ranks):
    (r0, r1), _ = two_ranks
    for run in ("plain", "ddp", "noisy", "resumed"):
        for k in r0[run]:
            assert torch.equal(r0[run][k], r1[run][k]), (run, k)


def test_two_ranks_equal_one_process_with_the_same_global_batch(two_ranks):
    (r0, _), _ = two_ranks
    single = train(make_state(1, 0, noisy=False), STEPS)
    assert_close(r0["plain"], single)
    untrained = make_state(1, 0, noisy=False).models["m"].state_dict()
    assert not torch.allclose(single["0.weight"], untrained["0.weight"], atol=1e-3)  # it did train


def test_ddp_wrapper_equals_gradient_averaging(two_ranks):
    (r0, _), _ = two_ranks
    assert_close(r0["ddp"], r0["plain"])


def test_two_process_resume_equals_the_uninterrupted_run(two_ranks):
    (r0, r1), out = two_ranks
    assert_close(r0["resumed"], r0["noisy"], atol=1e-6)
    ckpt = ckpt_io.load_checkpoint(out / "ckpt.pt")
    assert ckpt["step"] == 3 and ckpt["extra"]["world"] == WORLD and len(ckpt["extra"]["rank_rng"]) == 1
    assert not torch.equal(r0["noise_draw"], r1["noise_draw"])  # per-rank random streams, each restored


def test_a_checkpoint_of_another_world_size_is_refused(two_ranks):
    _, out = two_ranks
    state = make_state(1, 0, noisy=True)
    with pytest.raises(ckpt_io.CheckpointError, match="2 process"):
        state.restore(ckpt_io.load_checkpoint(out / "ckpt.pt"))


def test_global_batch_must_divide_across_ranks():
    assert distributed.per_rank_batch(8, 4) == 2
    with pytest.raises(ValueError, match="batch_size = 6 .* multiple of the 4 processes"):
        distributed.per_rank_batch(6, 4)
