"""`syncvp.prediction.formats`: predicted frames as PNGs and back, within one quantisation step."""

from __future__ import annotations

import numpy as np
import pytest

from syncvp.io.model_space import field_to_model
from syncvp.prediction import formats

# as a dataset's summary.json lists its modalities
DEPTH = {
    "kind": "image",
    "channels": 1,
    "encoding": "inverse_depth",
    "depth_near": 1.0,
    "depth_far": 12.0,
    "meaning": "255 * (1/z - 1/far) ...",
}
T2M = {"kind": "field", "channels": 1, "units": "K", "norm_min": 250.0, "norm_max": 290.0}
SEMANTIC = {"kind": "image", "channels": 1, "encoding": "class_gray", "num_classes": 4, "classes": "a,b,c,d"}


def _round_trip(tmp_path, x: np.ndarray, fmt: dict) -> tuple[np.ndarray, dict]:
    """Write frames [T, H, W, C] of model space with `fmt`, read the PNGs and format.json back."""
    values = formats.png_values(x, fmt)
    paths = [formats.write_png(tmp_path / fmt["modality"] / f"{i:04d}.png", f) for i, f in enumerate(values)]
    formats.write_format(tmp_path / fmt["modality"], fmt)
    return np.stack([formats.read_png(p) for p in paths]), formats.read_format(tmp_path / fmt["modality"])


def test_depth_16_bit_round_trip_recovers_metres(tmp_path):
    rng = np.random.default_rng(0)
    near, far = 1.0, 12.0
    z = rng.uniform(near, far, (3, 5, 6, 1))
    x = 2 * (1 / z - 1 / far) / (1 / near - 1 / far) - 1  # the store's inverse depth in model space
    v, fmt = _round_trip(tmp_path, x, formats.frame_format("depth", 1, DEPTH))
    assert v.dtype == np.uint16 and v.shape == z.shape
    assert fmt["formula"] == "depth [m] = 1 / (1 / 12.0 + v / 65535 * (1 / 1.0 - 1 / 12.0))"
    back = formats.to_physical(v, fmt)
    # half a quantisation step of inverse depth, in metres: |dz| = z^2 |d(1/z)|
    step = 0.5 / 65535 * (1 / near - 1 / far)
    assert np.all(np.abs(back - z) <= z**2 * step * 1.0001)
    assert np.abs(formats.model_values(v, fmt) - x).max() <= 1 / 65535 + 1e-6
    # the formula spelled out in format.json gives the same numbers (v = 0 -> far, 65535 -> near)
    assert formats.to_physical(np.array([0, 65535]), fmt) == pytest.approx([12.0, 1.0])


def test_field_16_bit_round_trip_recovers_kelvin(tmp_path):
    rng = np.random.default_rng(1)
    k = rng.uniform(250.0, 290.0, (2, 4, 4, 1))
    v, fmt = _round_trip(tmp_path, field_to_model(k, 250.0, 290.0), formats.frame_format("t2m", 1, T2M))
    assert v.dtype == np.uint16 and fmt["physical"]["units"] == "K"
    assert np.abs(formats.to_physical(v, fmt) - k).max() <= 0.5 * 40.0 / 65535 + 1e-6
    assert formats.to_physical(np.array([0, 65535]), fmt) == pytest.approx([250.0, 290.0])


def test_class_maps_are_ids_and_rgb_stays_8_bit(tmp_path):
    ids = np.array([0, 1, 2, 3, 2, 1]).reshape(1, 2, 3, 1)
    v, fmt = _round_trip(tmp_path, ids / 3 * 2 - 1, formats.frame_format("semantic", 1, SEMANTIC))
    assert v.dtype == np.uint8 and fmt["classes"] == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(v, ids)
    rgb = np.random.default_rng(2).integers(0, 256, (2, 4, 5, 3)).astype(np.uint8)
    v, fmt = _round_trip(tmp_path, rgb / 127.5 - 1, formats.frame_format("rgb", 3))
    assert fmt["png"] == "rgb8" and v.dtype == np.uint8
    np.testing.assert_array_equal(v, rgb)


def test_without_a_store_depth_maps_to_model_space_only(tmp_path):
    fmt = formats.frame_format("depth", 1)
    assert fmt["model_space"] == "x = v / 65535 * 2 - 1" and "physical" not in fmt
    with pytest.raises(ValueError, match="'depth' .* has no physical units"):
        formats.to_physical(np.zeros(2), fmt)
    v, _ = _round_trip(tmp_path, np.array([-1.0, 0.0, 1.0]).reshape(1, 1, 3, 1), fmt)
    np.testing.assert_array_equal(v.ravel(), [0, 32768, 65535])
