"""Model space: uint8 images and min-max fields to [-1, 1] and back; one owner for the data
loaders and the metrics."""

from __future__ import annotations

import numpy as np

from syncvp.data import transforms
from syncvp.io import model_space
from syncvp.io.model_space import FIELD_FILL, field_to_model, image_to_model, model_to_field, model_to_image


def test_images_round_trip_and_the_paper_truncation():
    values = np.arange(256, dtype=np.uint8)
    assert np.array_equal(model_to_image(image_to_model(values)), values)
    x = np.array([-2.0, -1.0, 0.0, 0.00392, 1.0, 3.0])
    assert model_to_image(x, "truncate").tolist() == [0, 0, 127, 127, 255, 255]
    assert model_to_image(x).tolist() == [0, 0, 128, 128, 255, 255]


def test_fields_map_min_max_and_missing_points_to_the_fill():
    x = np.array([250.0, 275.0, 300.0, np.nan, 280.0])
    valid = np.array([1, 1, 1, 1, 0])
    v = field_to_model(x, 250.0, 300.0, valid)
    assert v.dtype == np.float32 and v.tolist() == [-1.0, 0.0, 1.0, FIELD_FILL, FIELD_FILL]
    assert np.allclose(model_to_field(v[:3], 250.0, 300.0), x[:3])


def test_the_data_transforms_reexport_the_same_functions():
    for name in ("FIELD_FILL", "image_to_model", "model_to_image", "field_to_model", "model_to_field"):
        assert getattr(transforms, name) is getattr(model_space, name)
