"""Pseudo-depth inference: the official preprocessing, resize back, normalisation, batching."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from syncvp.data import pseudo_depth as pdepth
from syncvp.models.depth_anything import load_depth_anything
from tests.models.depth_anything_weights import save_random_checkpoint


@pytest.fixture(scope="module")
def vits(tmp_path_factory):
    path = save_random_checkpoint(tmp_path_factory.mktemp("da") / "depth_anything_v2_vits.pth", "vits", seed=5)
    return pdepth.prepare_model(load_depth_anything(path, "vits"), "cpu")


def official_resize_size(h: int, w: int, size: int = 518) -> tuple[int, int]:
    """DA-V2's Resize(keep_aspect_ratio, lower_bound, ensure_multiple_of=14), restated with numpy."""
    scale = max(size / h, size / w)

    def constrain(x):
        y = int(np.round(x / 14) * 14)
        return int(np.ceil(x / 14) * 14) if y < size else y

    return constrain(scale * h), constrain(scale * w)


@pytest.mark.parametrize("hw", [(1024, 2048), (480, 640), (128, 128), (128, 256), (64, 64), (375, 1242), (720, 1280),
                                (518, 700), (1080, 1920), (300, 200)])
def test_network_size_is_the_official_lower_bound_resize(hw):
    assert pdepth.network_size(*hw) == official_resize_size(*hw)


def test_network_size_documented_examples():
    assert pdepth.network_size(1024, 2048) == (518, 1036)
    assert pdepth.network_size(480, 640) == (518, 686)
    assert pdepth.network_size(128, 256) == (518, 1036)
    assert pdepth.network_size(16, 16, input_size=28) == (28, 28)


@pytest.mark.parametrize("hw", [(64, 80), (700, 900)])  # up- and down-sampling
def test_preprocess_matches_cv2_bicubic_and_imagenet_norm(hw):
    rgb = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    size = pdepth.network_size(*hw)
    got = pdepth.preprocess(torch.from_numpy(rgb)[None], size)[0].numpy()
    ref = cv2.resize(rgb / 255.0, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    ref = ((ref - pdepth.IMAGENET_MEAN) / pdepth.IMAGENET_STD).transpose(2, 0, 1)
    assert got.shape == ref.shape == (3, *size)
    # torch bicubic (a = -0.75, no antialias) vs OpenCV INTER_CUBIC: ~1e-4 on [0, 1] images, /std
    assert np.abs(got - ref).max() < 1.5e-4 / min(pdepth.IMAGENET_STD)


def official_uint8(depth: np.ndarray) -> np.ndarray:
    """run.py: (d - min) / (max - min) * 255.0, astype(np.uint8)."""
    return ((depth - depth.min()) / (depth.max() - depth.min()) * 255.0).astype(np.uint8)


def test_estimate_depth_follows_the_official_inference(vits):
    """Frame by frame as the official `infer_image` (cv2 bicubic in float64, bilinear back with
    align_corners=True, per-frame min-max, truncation) vs the batched implementation."""
    frames = np.random.default_rng(1).integers(0, 256, (3, 30, 45, 3), dtype=np.uint8)
    got = pdepth.estimate_depth(vits, frames, input_size=42, batch_size=2, normalization="per_frame")
    assert got.shape == (3, 30, 45) and got.dtype == np.uint8
    h, w = pdepth.network_size(30, 45, 42)
    for t in range(3):
        image = cv2.resize(frames[t] / 255.0, (w, h), interpolation=cv2.INTER_CUBIC)
        image = ((image - pdepth.IMAGENET_MEAN) / pdepth.IMAGENET_STD).transpose(2, 0, 1).astype(np.float32)
        with torch.inference_mode():
            depth = vits(torch.from_numpy(image)[None])
            depth = F.interpolate(depth[:, None], (30, 45), mode="bilinear", align_corners=True)[0, 0].numpy()
        ref = official_uint8(depth)
        diff = np.abs(got[t].astype(int) - ref)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.02, (diff.max(), (diff > 0).mean())
        assert got[t].min() == 0 and got[t].max() == 255


def test_per_frame_and_per_video_normalisation():
    scales = torch.tensor([1.0, 3.0, 10.0, 0.5])[:, None, None]
    depth = torch.rand(4, 5, 6, generator=torch.Generator().manual_seed(0)) * scales
    lo, hi = depth.amin(dim=(1, 2), keepdim=True), depth.amax(dim=(1, 2), keepdim=True)
    per_frame = pdepth._to_uint8(depth, lo, hi).numpy()
    for t in range(4):
        np.testing.assert_array_equal(per_frame[t], official_uint8(depth[t].numpy()))
    per_video = pdepth._to_uint8(depth, depth.min(), depth.max()).numpy()
    np.testing.assert_array_equal(per_video, official_uint8(depth.numpy()))
    flat = pdepth._to_uint8(torch.full((1, 3, 3), 2.5), torch.tensor(2.5), torch.tensor(2.5))
    assert flat.eq(0).all(), "a constant map becomes 0 (the official code would divide by zero)"


def test_output_is_frame_size_batched_equals_looped_and_per_video(vits):
    frames = np.random.default_rng(2).integers(0, 256, (5, 17, 23, 3), dtype=np.uint8)
    events = []
    batched = pdepth.estimate_depth(vits, frames, input_size=28, batch_size=4, progress=events.append)
    looped = np.concatenate([pdepth.estimate_depth(vits, frames[t:t + 1], input_size=28, batch_size=1)
                             for t in range(5)])
    assert batched.shape == (5, 17, 23) and batched.dtype == np.uint8
    assert np.abs(batched.astype(int) - looped).max() <= 1 and (batched == looped).mean() > 0.99
    assert [(e.done, e.total) for e in events] == [(4, 5), (5, 5)]
    video = pdepth.estimate_depth(vits, frames, input_size=28, batch_size=4, normalization="per_video")
    assert video.min() == 0 and video.max() == 255
    assert sum(int(v.max() == 255) for v in video) == 1, "one frame holds the video's nearest point"
    with pytest.raises(ValueError, match="RGB uint8"):
        pdepth.estimate_depth(vits, frames[..., 0], input_size=28)


def test_bf16_autocast_on_cpu_stays_close(vits):
    """precision "bfloat16" runs autocast; labels stay within a few grey levels of float32."""
    frames = np.random.default_rng(3).integers(0, 256, (2, 20, 20, 3), dtype=np.uint8)
    fp32 = pdepth.estimate_depth(vits, frames, input_size=28, precision="float32")
    auto = pdepth.estimate_depth(vits, frames, input_size=28, precision="auto")  # float32 on CPU
    bf16 = pdepth.estimate_depth(vits, frames, input_size=28, precision="bfloat16")
    np.testing.assert_array_equal(fp32, auto)
    assert np.abs(fp32.astype(int) - bf16).mean() < 8
    assert pdepth.uses_bf16(torch.device("cuda"), "auto") and not pdepth.uses_bf16(torch.device("cpu"), "auto")


def test_channels_last_gives_the_same_depth(vits):
    """prepare_model's channels-last layout (faster convolutions) changes no result beyond float noise."""
    x = torch.randn(2, 3, 70, 98, generator=torch.Generator().manual_seed(6))
    nchw = copy.deepcopy(vits).to(memory_format=torch.contiguous_format)
    assert vits.depth_head.scratch.output_conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref, got = nchw(x), vits(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_attributes_record_the_choice():
    attrs = pdepth.attributes(encoder="vitb", input_size=518, normalization="per_frame", precision="auto",
                              device=torch.device("cpu"), weights="depth_anything_v2_vitb.pth md5 x")
    assert attrs["encoding"] == "per-frame min-max to 0-255 (truncated to uint8), larger = nearer"
    assert attrs["encoder"] == "vitb" and attrs["bf16"] is False and attrs["model"] == "Depth-Anything-V2"


@pytest.mark.gpu
def test_cuda_bf16_channels_last_close_to_cpu(vits):
    frames = np.random.default_rng(4).integers(0, 256, (4, 64, 96, 3), dtype=np.uint8)
    cpu = pdepth.estimate_depth(vits, frames, input_size=126, precision="float32")
    gpu_model = pdepth.prepare_model(copy.deepcopy(vits), "cuda")  # channels-last convolutions
    gpu = pdepth.estimate_depth(gpu_model, frames, input_size=126, precision="auto")  # bf16 autocast
    assert gpu.shape == cpu.shape and np.abs(gpu.astype(int) - cpu).mean() < 8


def test_the_estimator_job_checks_the_weights_before_loading(tmp_path):
    from syncvp.io.weights import MissingWeightsError
    from syncvp.models.depth_anything import CheckpointError

    path = save_random_checkpoint(tmp_path / "depth_anything_v2_vits.pth", "vits", seed=5)
    assert pdepth.estimator_weights(path, "vits") == path
    with pytest.raises(MissingWeightsError, match=r"weights\.depth_anything_vitb is null"):
        pdepth.estimator_weights(None, "vitb")
    with pytest.raises(CheckpointError, match="holds Depth-Anything-V2 ViT-S weights"):
        pdepth.estimator_weights(path, "vitb")
    model = pdepth.load_estimator(path, "vits", "cpu")
    assert not model.training and next(model.parameters()).device == torch.device("cpu")
    assert len(pdepth.code_digest()) == 32
