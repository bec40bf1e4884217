"""I3D: the documented i3d_pretrained_400.pt layout loads strictly; forward and preprocessing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from syncvp.metrics.i3d import I3DWeightsError, InceptionI3d, load_i3d, preprocess, same_padding
from tests.metrics.conftest import i3d_state


def test_layout_matches_the_documented_file():
    state = InceptionI3d().state_dict()
    want = i3d_state()
    assert len(state) == 344 and sum(k.endswith("num_batches_tracked") for k in state) == 57
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in want.items()}
    assert tuple(state["Conv3d_1a_7x7.conv3d.weight"].shape) == (64, 3, 7, 7, 7)
    assert tuple(state["Mixed_5c.b3b.conv3d.weight"].shape) == (128, 832, 1, 1, 1)
    assert tuple(state["logits.conv3d.weight"].shape) == (400, 1024, 1, 1, 1)
    assert [k for k in state if k.endswith("conv3d.bias")] == ["logits.conv3d.bias"]
    params = sum(p.numel() for p in InceptionI3d().parameters())
    assert round(params / 1e6, 2) == 12.70
    assert all(m.eps == 1e-5 for m in InceptionI3d().modules() if isinstance(m, torch.nn.BatchNorm3d))


@pytest.mark.parametrize("size,kernel,stride", [(16, 7, 2), (7, 3, 2), (8, 2, 2), (5, 3, 1), (1, 3, 2)])
def test_same_padding_gives_tf_same_output_size(size, kernel, stride):
    x = torch.ones(1, 1, size, 4, 4)
    padded = same_padding(x, (kernel, 1, 1), (stride, 1, 1))
    out = F.max_pool3d(padded, (kernel, 1, 1), (stride, 1, 1))
    assert out.shape[2] == math.ceil(size / stride)
    total = padded.shape[2] - size
    assert total == max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    assert padded[0, 0, : total // 2].sum() == 0 and padded[0, 0, total // 2].sum() == 16  # smaller half in front


@pytest.fixture(scope="module")
def state():
    return i3d_state(seed=1)


def test_strict_load_and_forward(tmp_path, state):
    path = tmp_path / "i3d_pretrained_400.pt"
    torch.save(state, path)
    model = load_i3d(path)
    assert not model.training
    torch.testing.assert_close(model.Mixed_4d.b2b.bn.running_var, state["Mixed_4d.b2b.bn.running_var"])
    gen = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (2, 3, 18, 24, 32), dtype=torch.uint8, generator=gen)
    with torch.no_grad():
        full = model(preprocess(video[:1, :, :16]))  # 16 frames: 2 temporal positions, pool [2, 7, 7]
        tail = model(preprocess(video[:, :, 16:]))  # 2 frames: 1 temporal position, pool [1, 7, 7]
        second = model(preprocess(video[1:, :, 16:]))
    assert full.shape == (1, 400) and tail.shape == (2, 400)
    assert torch.isfinite(full).all() and torch.isfinite(tail).all()
    torch.testing.assert_close(second[0], tail[1], rtol=1e-4, atol=1e-5)  # batch-independent (eval BN)
    assert not torch.allclose(tail[0], tail[1])


def test_load_tolerates_missing_num_batches_tracked_and_rejects_the_rest(tmp_path, state):
    path = tmp_path / "old.pt"
    torch.save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, path)
    load_i3d(path)
    broken = dict(state, **{"Mixed_3b.b0.conv3d.weight": torch.zeros(64, 192, 3, 3, 3)})
    torch.save(broken, path)
    with pytest.raises(I3DWeightsError, match="Mixed_3b.b0.conv3d.weight"):
        load_i3d(path)
    broken = {k: v for k, v in state.items() if k != "logits.conv3d.bias"}
    broken["fc.weight"] = torch.zeros(1)
    torch.save(broken, path)
    with pytest.raises(I3DWeightsError, match=r"missing \['logits.conv3d.bias'\].*unexpected \['fc.weight'\]"):
        load_i3d(path)


def test_preprocess_shorter_side_crop_and_range():
    gen = torch.Generator().manual_seed(0)
    video = torch.randint(0, 256, (1, 3, 2, 64, 96), dtype=torch.uint8, generator=gen)
    out = preprocess(video)
    assert out.shape == (1, 3, 2, 224, 224) and out.dtype == torch.float32
    frames = video[0].transpose(0, 1).float() / 255
    resized = F.interpolate(frames, size=(224, 336), mode="bilinear", align_corners=False)
    want = (resized[:, :, :, 56:280] - 0.5) * 2
    torch.testing.assert_close(out[0].transpose(0, 1), want)
    assert out.min() >= -1 and out.max() <= 1
    black = preprocess(torch.zeros(1, 3, 1, 128, 128, dtype=torch.uint8))
    white = preprocess(torch.full((1, 3, 1, 128, 128), 255, dtype=torch.uint8))
    assert (black == -1).all() and (white == 1).all()
    gray = video[:, :1]
    torch.testing.assert_close(preprocess(gray), preprocess(gray.expand(-1, 3, -1, -1, -1)))
    with pytest.raises(ValueError, match="uint8"):
        preprocess(video.float())
