"""The diffusion stages train data-parallel: 2 gloo ranks (rank 0 builds the latent cache, the
other reads it) end with identical weights, rank 0's checkpoint records both ranks, and each
rank took its own share of every global batch."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from syncvp.models.diffusion_file import load_diffusion_model
from syncvp.training import diffusion_job, diffusion_train, distributed
from syncvp.training.data import BatchStream
from tests.training.diffusion_setup import setup

WORLD = 2


def _worker(rank: int, port: int, params, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    real_fit, seen = diffusion_train.fit, {}

    def fit(state, updates, batches, **kwargs):  # record this rank's batches and final weights
        stream: BatchStream = state.streams["train"]
        seen["batch"] = stream.batch_size
        result = real_fit(state, updates, batches, **kwargs)
        seen["weights"] = {k: v.detach().clone() for k, v in state.models["model"].state_dict().items()}
        return result

    diffusion_train.fit = fit
    job = diffusion_job.plan_single(
        "synthetic-rgb",
        dataset=params.datasets["synthetic"],
        unet=params.unet,
        diffusion=params.diffusion,
        train=params.train_single,
        run=params.run,
        paths=params.paths,
    )
    result = diffusion_train.train(job)
    torch.save(
        {**seen, "result": {k: v for k, v in result.items() if isinstance(v, (int, float, str))}},
        os.path.join(out, f"rank{rank}.pt"),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_stage1_training_keeps_identical_weights(tiny_params, tmp_path):
    params = setup(tiny_params)  # batch_size 4: 2 windows per rank
    mp.spawn(_worker, args=(_free_port(), params, str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD))
    assert r0["batch"] == r1["batch"] == params.train_single.batch_size // WORLD
    for k in r0["weights"]:
        assert torch.equal(r0["weights"][k], r1["weights"][k]), k
    assert r0["result"]["steps"] == params.train_single.steps and r1["result"] == {"unit": "synthetic-rgb", "rank": 1}
    job = diffusion_job.plan_single(
        "synthetic-rgb",
        dataset=params.datasets["synthetic"],
        unet=params.unet,
        diffusion=params.diffusion,
        train=params.train_single,
        run=params.run,
        paths=params.paths,
    )
    ckpt = torch.load(job.checkpoint_path, weights_only=True)
    assert ckpt["step"] == params.train_single.steps and ckpt["extra"]["world"] == WORLD
    assert not distributed.initialized()
    diffusion_train.export(job)  # rank 0's file exports like a single-process run
    exported = load_diffusion_model(params.paths.model_dir("synthetic-rgb") / "diffusion.pt", kind="single")
    assert exported.meta["step"] == params.train_single.steps
    exported.build()
