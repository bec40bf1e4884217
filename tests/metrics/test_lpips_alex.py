"""LPIPS-AlexNet: built by the lpips package from local files only, never touching the network."""

from __future__ import annotations

import socket

import pytest
import torch

from syncvp.metrics.lpips_alex import LpipsWeightsError, build_lpips_alex, heads_path, lpips_frames


def refuse(*args, **kwargs):
    raise AssertionError("network access attempted")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty TORCH_HOME, torch.hub downloads and socket connections that fail loudly."""
    home = tmp_path / "torch_home"
    home.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return home


def test_builds_offline_with_the_local_trunk_and_bundled_heads(lpips_package, alexnet_file, offline):
    model = build_lpips_alex(alexnet_file)
    assert list(offline.iterdir()) == []
    trunk = torch.load(alexnet_file, weights_only=True)
    for index, piece in {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}.items():
        layer = getattr(getattr(model.net, f"slice{piece}"), str(index))
        assert torch.equal(layer.weight, trunk[f"features.{index}.weight"])
        assert torch.equal(layer.bias, trunk[f"features.{index}.bias"])
    heads = torch.load(heads_path(), map_location="cpu", weights_only=True)
    assert sorted(heads) == [f"lin{i}.model.1.weight" for i in range(5)]
    for i in range(5):
        assert torch.equal(getattr(model, f"lin{i}").model[1].weight, heads[f"lin{i}.model.1.weight"])
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_per_frame_scores(lpips_package, alexnet_file, offline):
    model = build_lpips_alex(alexnet_file)
    gen = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (2, 3, 3, 32, 40), dtype=torch.uint8, generator=gen)
    other = torch.randint(0, 256, (2, 3, 3, 32, 40), dtype=torch.uint8, generator=gen)
    same = lpips_frames(model, video, video)
    assert same.shape == (2, 3) and torch.all(same.abs() < 1e-6)
    scores = lpips_frames(model, video, other, batch_size=4)
    assert torch.all(scores > 0)
    direct = model(video[1, :, 2][None].float() / 127.5 - 1, other[1, :, 2][None].float() / 127.5 - 1)
    assert scores[1, 2].item() == pytest.approx(direct.item(), rel=1e-5)
    gray = video[:, :1]
    torch.testing.assert_close(
        lpips_frames(model, gray, other[:, :1]),
        lpips_frames(model, gray.expand(-1, 3, -1, -1, -1), other[:, :1].expand(-1, 3, -1, -1, -1)),
    )
    with pytest.raises(ValueError, match="at least 31x31"):
        lpips_frames(model, video[..., :30, :], video[..., :30, :])


def test_rejects_a_file_without_the_trunk(lpips_package, alexnet_file, tmp_path):
    state = torch.load(alexnet_file, weights_only=True)
    del state["features.8.bias"]
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(LpipsWeightsError, match=r"missing features\.8\.bias"):
        build_lpips_alex(bad)
    state = torch.load(alexnet_file, weights_only=True)
    state["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    torch.save(state, bad)
    with pytest.raises(LpipsWeightsError, match=r"net\.slice2\.3\.weight"):
        build_lpips_alex(bad)
