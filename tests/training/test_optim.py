"""The AdamW the training stages build: which kernels it takes (the per-tensor loop on CPU, fused
on CUDA), and that a resumed optimizer keeps its own kernels."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from syncvp.io import checkpoint as ckpt_io
from syncvp.training import optim
from syncvp.training.state import TrainState

HYPER = dict(lr=1e-3, betas=(0.9, 0.999), weight_decay=0.01)


def small_net(seed: int = 0, device: str = "cpu") -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.SiLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    return net.to(device)


def train(net: nn.Module, opt: torch.optim.Optimizer, steps: int, seed: int = 1) -> None:
    """`steps` AdamW steps on random regression batches (same batches for the same seed)."""
    g = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device
    for _ in range(steps):
        x = torch.randn(4, 3, 8, 8, generator=g).to(device)
        y = torch.randn(4, 5, generator=g).to(device)
        opt.zero_grad(set_to_none=True)
        (net(x) - y).square().mean().backward()
        opt.step()


def test_on_cpu_it_takes_the_per_tensor_loop_and_trains_bit_for_bit_like_torch_default():
    ours_net, loop_net = small_net(), small_net()
    ours = optim.adamw(ours_net.parameters(), **HYPER)
    loop = torch.optim.AdamW(loop_net.parameters(), **HYPER)
    assert all(not g["foreach"] and not g["fused"] for g in ours.param_groups)
    train(ours_net, ours, 25)
    train(loop_net, loop, 25)
    for a, b in zip(ours_net.parameters(), loop_net.parameters(), strict=True):
        assert torch.equal(a, b)
        assert torch.equal(ours.state[a]["exp_avg_sq"], loop.state[b]["exp_avg_sq"])
    assert not torch.equal(next(ours_net.parameters()), next(small_net().parameters())), "it trained"


def test_the_kernel_choice_follows_the_parameters():
    cpu = [nn.Parameter(torch.zeros(3))]
    loop = {"foreach": False, "fused": False}
    assert optim.implementation(cpu) == optim.implementation([]) == loop
    meta = [nn.Parameter(torch.zeros(3, device="meta"))]
    assert optim.implementation(meta) == loop
    frozen_only = [nn.Parameter(torch.zeros(2), requires_grad=False)]
    with pytest.raises(ValueError, match="no trainable parameters"):
        optim.adamw(frozen_only, **HYPER)


def test_a_resumed_optimizer_keeps_its_own_kernels_and_the_saved_moments(tmp_path):
    """A checkpoint written by an AdamW on other kernels (here foreach, as a CUDA run without
    fused kernels writes it) restores the moments and step, not the kernel flags."""
    net = small_net()
    old = torch.optim.AdamW(net.parameters(), foreach=True, **HYPER)
    train(net, old, 3)
    path = TrainState(models={"m": net}, optimizers={"m": old}).save(tmp_path / "c.pt", config_hash="h")
    assert old.param_groups[0]["foreach"] is True

    fresh_net = small_net(seed=5)
    ours = optim.adamw(fresh_net.parameters(), **HYPER)
    TrainState(models={"m": fresh_net}, optimizers={"m": ours}).restore(ckpt_io.load_checkpoint(path))
    assert ours.param_groups[0]["foreach"] is False and ours.param_groups[0]["fused"] is False
    assert ours.param_groups[0]["lr"] == HYPER["lr"]
    for a, b in zip(fresh_net.parameters(), net.parameters(), strict=True):
        assert torch.equal(a, b)
        assert torch.equal(ours.state[a]["exp_avg"], old.state[b]["exp_avg"])
        assert float(ours.state[a]["step"]) == 3

    # carrying on from the checkpoint equals carrying on with the optimizer that wrote it (on
    # CPU, foreach and the loop run the same operations)
    train(fresh_net, ours, 4, seed=2)
    train(net, old, 4, seed=2)
    assert all(torch.equal(a, b) for a, b in zip(fresh_net.parameters(), net.parameters()))


def test_a_state_written_by_the_loop_resumes_into_fused_kernels():
    """What a CPU checkpoint meets on a CUDA run (here with fused kernels on CPU, which torch has
    too): the fused optimizer keeps its kernels, and carries on close to the loop."""
    loop_net, fused_net = small_net(), small_net()
    loop = torch.optim.AdamW(loop_net.parameters(), foreach=False, **HYPER)
    train(loop_net, loop, 3)
    fused_net.load_state_dict(loop_net.state_dict())
    fused = torch.optim.AdamW(fused_net.parameters(), fused=True, **HYPER)
    optim.load_optimizer_state(fused, copy.deepcopy(loop.state_dict()))  # as read from a file
    assert fused.param_groups[0]["fused"] is True and not fused.param_groups[0]["foreach"]
    p = next(fused_net.parameters())
    assert fused.state[p]["step"].dtype == torch.float32 and fused.state[p]["step"].device == p.device
    train(loop_net, loop, 5, seed=2)
    train(fused_net, fused, 5, seed=2)
    for a, b in zip(fused_net.parameters(), loop_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert float(fused.state[p]["step"]) == 8


@pytest.mark.gpu
def test_on_cuda_it_takes_fused_kernels_close_to_the_per_tensor_loop_and_keeps_them_on_resume():
    ours_net, loop_net = small_net(device="cuda"), small_net(device="cuda")
    ours = optim.adamw(ours_net.parameters(), **HYPER)
    assert all(g["fused"] and not g["foreach"] for g in ours.param_groups)
    loop = torch.optim.AdamW(loop_net.parameters(), foreach=False, **HYPER)
    train(ours_net, ours, 25)
    train(loop_net, loop, 25)
    for a, b in zip(ours_net.parameters(), loop_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # a state written by the loop (its step counts on the CPU) resumed into a fused optimizer:
    # it stays fused, its step counts move beside the parameters, and it carries on like the loop
    resumed_net = small_net(device="cuda")
    resumed_net.load_state_dict(loop_net.state_dict())
    resumed = optim.adamw(resumed_net.parameters(), **HYPER)
    optim.load_optimizer_state(resumed, copy.deepcopy(loop.state_dict()))  # as read from a file
    assert resumed.param_groups[0]["fused"] is True
    assert all(s["step"].device.type == "cuda" for s in resumed.state.values())
    train(resumed_net, resumed, 5, seed=3)
    train(loop_net, loop, 5, seed=3)
    for a, b in zip(resumed_net.parameters(), loop_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
