"""EMA: cadence, warm-up decay, the update formula, raw weights untouched, state round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from syncvp.models.ema import EMA

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model(seed=0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    return net


def test_updates_only_every_n_steps_with_the_formula():
    net = model()
    ema = EMA(net, decay=0.9, every=3, warmup=False)
    start = [p.clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert [ema.update(net, s) for s in range(1, 7)] == [False, False, True, False, False, True]
    assert ema.updates == 2
    for e, s0, p in zip(ema.module.parameters(), start, net.parameters()):
        # two updates towards the same target: e = 0.81 s0 + 0.19 p
        assert torch.allclose(e, 0.81 * s0 + 0.19 * p, atol=1e-6)
    assert all(not p.requires_grad for p in ema.module.parameters()) and not ema.module.training
    assert all(p.requires_grad for p in net.parameters())


def test_warmup_decay_and_buffers():
    net = model()
    ema = EMA(net, decay=0.9999, every=1, warmup=True)
    assert ema.current_decay() == pytest.approx(2 / 11)
    net.train()
    net(torch.randn(8, 3))  # moves the BatchNorm running stats
    ema.update(net, 1)
    assert ema.current_decay() == pytest.approx(3 / 12)
    for e, b in zip(ema.module.buffers(), net.buffers()):
        assert torch.equal(e, b)  # buffers are copied, not averaged
    ema.updates = 10 ** 6
    assert ema.current_decay() == 0.9999  # capped


def test_state_round_trip_and_mismatch():
    net = model()
    ema = EMA(net, decay=0.99, every=2, warmup=True)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(2)
    ema.update(net, 2)
    restored = EMA(model(1), decay=0.99, every=2, warmup=True)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 1
    assert all(torch.equal(a, b) for a, b in zip(restored.module.state_dict().values(), ema.module.state_dict().values()))
    with pytest.raises(ValueError, match="decay"):
        EMA(net, decay=0.9, every=2, warmup=True).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match="must be in"):
        EMA(net, decay=1.0, every=1, warmup=False)
