"""Class maps: store coding, nearest-class decoding, pixel accuracy, mean IoU and the palette,
against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from syncvp.figures import PALETTE, class_colours
from syncvp.metrics.classes import class_coding, mean_iou, pixel_accuracy


def test_coding_of_a_stored_class_map():
    gray = class_coding({"encoding": "class_gray", "num_classes": 16, "classes": ",".join(f"c{k}" for k in range(16))})
    assert gray.levels == tuple(17.0 * k for k in range(16))  # SYNTHIA: id / 15 * 255
    synthetic = class_coding({"encoding": "class_gray", "num_classes": 4, "classes": "sky,ground,sphere,box"})
    assert synthetic.names == ("sky", "ground", "sphere", "box") and synthetic.levels == (0.0, 85.0, 170.0, 255.0)
    three = class_coding({"encoding": "class_gray", "num_classes": 3})
    assert three.levels == (0.0, 128.0, 255.0) and three.names == (
        "class 0",
        "class 1",
        "class 2",
    )  # 127.5 rounds to even
    assert class_coding({"encoding": "gray"}) is None and class_coding({}) is None
    with pytest.raises(ValueError, match="num_classes >= 2 matching"):
        class_coding({"encoding": "class_gray", "num_classes": 3, "classes": "a,b"})


def test_nearest_class_with_ties_to_the_lower_one():
    gray = class_coding({"encoding": "class_gray", "num_classes": 16})
    values = np.array([0.0, 8.4, 8.5, 8.6, 17.0, 250.0, 255.0, 300.0, -5.0])
    # midpoints 8.5, 25.5, ...: 8.5 is a tie -> class 0; 250 -> nearest 255 (class 15)
    assert gray.to_ids(values).tolist() == [0, 0, 0, 1, 1, 15, 15, 15, 0]
    three = class_coding({"encoding": "class_gray", "num_classes": 3})  # levels 0, 128, 255
    assert three.to_ids(np.array([[63.9, 64.0], [64.1, 191.6]])).tolist() == [[0, 0], [1, 2]]


def test_pixel_accuracy_and_mean_iou_by_hand():
    true = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    assert pixel_accuracy(pred, true) == pytest.approx(4 / 6)
    # class 0: inter 1, union |{(0,0),(0,1),(1,2)}| = 3; class 1: inter 2, union 3; class 2: inter 1, union 2
    assert mean_iou(pred, true, num_classes=4) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)  # class 3 absent
    valid = np.array([[1, 0, 1], [1, 1, 0]], bool)  # drop the two wrong pixels but one
    assert pixel_accuracy(pred, true, valid) == pytest.approx(4 / 4)
    assert mean_iou(pred, true, 4, valid) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        pixel_accuracy(pred, true[:1])
    with pytest.raises(ValueError, match="no valid pixel"):
        mean_iou(pred, true, 4, np.zeros_like(valid))


def test_palette_gives_each_of_256_classes_its_own_colour_and_pictures_use_the_nearest_class():
    assert PALETTE.dtype == np.uint8 and PALETTE.shape == (256, 3) and len({tuple(c) for c in PALETTE}) == 256
    assert tuple(PALETTE[0]) == (31, 119, 180) and tuple(PALETTE[11]) == (255, 255, 255)
    frames = np.array([[[0, 17, 100, 255]]], np.uint8)  # 16 classes: 100 is nearest 102 (class 6)
    assert [tuple(c) for c in class_colours(frames, 16)[0, 0]] == [tuple(PALETTE[k]) for k in (0, 1, 6, 15)]
