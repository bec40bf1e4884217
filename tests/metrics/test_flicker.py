"""The flicker pair metric by hand: static pixels from the reference, mean change there, NaN rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncvp.metrics.flicker import flicker, static_mask


def test_static_mask_allows_two_levels_in_every_channel():
    ref = torch.zeros(1, 3, 2, 1, 3, dtype=torch.uint8)
    ref[0, :, 1, 0, 0] = 2  # every channel +2: static
    ref[0, 1, 1, 0, 1] = 3  # one channel +3: moving
    assert static_mask(ref).tolist() == [[[[True, False, True]]]]


def test_flicker_by_hand():
    # 1 video, 3 frames of 2 x 2 pixels; the reference moves only at pixel (0, 0) between frames 1 and 2
    ref = torch.full((1, 3, 3, 2, 2), 100, dtype=torch.uint8)
    ref[0, :, 1, 0, 0] = 200
    ref[0, :, 2, 0, 0] = 200
    video = torch.zeros(1, 1, 3, 2, 2, dtype=torch.uint8)
    video[0, 0, 1] = torch.tensor([[50, 4], [0, 2]], dtype=torch.uint8)
    video[0, 0, 2] = torch.tensor([[0, 4], [6, 2]], dtype=torch.uint8)
    per_video, per_frame = flicker(ref, video)
    # frames 1 -> 2: static pixels (0,1), (1,0), (1,1): changes 4, 0, 2 -> 2; (0,0) moves (its 50 is ignored)
    # frames 2 -> 3: all four static: changes 50, 0, 6, 0 -> 14
    assert per_frame.shape == (1, 3) and np.isnan(per_frame[0, 0])
    assert per_frame[0, 1:].tolist() == pytest.approx([2.0, 14.0])
    assert per_video.tolist() == pytest.approx([8.0])


def test_flicker_averages_channels_and_is_nan_without_static_pixels():
    ref = torch.zeros(2, 1, 2, 1, 2, dtype=torch.uint8)
    ref[1, 0, 1] = 255  # video 2: nothing static
    video = torch.zeros(2, 3, 2, 1, 2, dtype=torch.uint8)
    video[:, 0, 1] = 9  # one of three channels changes by 9: 3 per pixel
    per_video, per_frame = flicker(ref, video)
    assert per_video[0] == pytest.approx(3.0) and np.isnan(per_video[1]) and np.isnan(per_frame[1]).all()


def test_flicker_checks_its_inputs():
    with pytest.raises(ValueError, match="uint8"):
        flicker(torch.zeros(1, 1, 2, 2, 2, dtype=torch.uint8), torch.zeros(1, 1, 2, 2, 2))
    with pytest.raises(ValueError, match="one batch"):
        flicker(torch.zeros(1, 1, 3, 2, 2, dtype=torch.uint8), torch.zeros(1, 1, 2, 2, 2, dtype=torch.uint8))
