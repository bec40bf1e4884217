"""Class maps (a categorical modality such as SYNTHIA's or the synthetic scenes' `semantic`): how
stored gray levels map to class ids, the decoding of a prediction to the nearest class, pixel
accuracy and mean IoU (the pictures' palette is `syncvp.figures.PALETTE`).

A clip store marks a class map with `encoding: class_gray` and `num_classes` (and `classes`, the
names, comma-separated): class k of K is stored as round(k * 255 / (K - 1))
(`syncvp.data.transforms.class_gray`; SYNTHIA's 16 classes: k * 17). Written by the synthetic
source, SYNTHIA and `image_sequence` modalities with `classes`.

A model predicts such a map as a gray image; `to_ids` takes each pixel to the class whose level
is nearest (ties to the lower class), so the scores below compare class ids, never gray values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class ClassCoding:
    """How a categorical modality is stored: class k is the gray level `levels[k]` (0-255 units).

    Attributes:
        names: the class names (k -> name), or "class k" where the store gives none.
        levels: the stored value of each class, increasing.
    """

    names: tuple[str, ...]
    levels: tuple[float, ...]

    @classmethod
    def gray(cls, names: tuple[str, ...]) -> "ClassCoding":
        """The `class_gray` coding of these classes: class k of K at round(k * 255 / (K - 1))."""
        levels = np.round(np.arange(len(names), dtype=np.float64) * 255.0 / (len(names) - 1))
        return cls(names=tuple(names), levels=tuple(map(float, levels)))

    @property
    def num_classes(self) -> int:
        return len(self.levels)

    def to_ids(self, values: np.ndarray) -> np.ndarray:
        """Class ids (int64) of gray values in 0-255 units: the nearest level, ties to the lower class."""
        levels = np.asarray(self.levels, np.float64)
        mids = (levels[1:] + levels[:-1]) / 2
        return np.searchsorted(mids, np.asarray(values, np.float64), side="left").astype(np.int64)


def class_coding(attrs: Mapping) -> ClassCoding | None:
    """The coding of a stored modality from its attributes, or None when it is not a class map.

    Raises:
        ValueError: a class map without a class count >= 2 matching its names (a store this code
            did not write).
    """
    if attrs.get("encoding") != "class_gray":
        return None
    names = tuple(n for n in str(attrs.get("classes", "")).split(",") if n)
    count = int(attrs.get("num_classes", len(names)))
    if count < 2 or (names and len(names) != count):
        raise ValueError(f"a class_gray modality needs num_classes >= 2 matching its class names, got {dict(attrs)}")
    return ClassCoding.gray(names or tuple(f"class {k}" for k in range(count)))


def _flat(pred: np.ndarray, true: np.ndarray, valid: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in shape")
    if valid is None:
        return pred.ravel(), true.ravel()
    keep = np.broadcast_to(np.asarray(valid, bool), pred.shape).ravel()
    return pred.ravel()[keep], true.ravel()[keep]


def pixel_accuracy(pred: np.ndarray, true: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Share of (valid) pixels whose predicted class id is the true one."""
    p, t = _flat(pred, true, valid)
    if p.size == 0:
        raise ValueError("no valid pixel to score")
    return float(np.mean(p == t))


def mean_iou(pred: np.ndarray, true: np.ndarray, num_classes: int, valid: np.ndarray | None = None) -> float:
    """Mean over classes of |pred = k and true = k| / |pred = k or true = k|, over the classes that
    occur in the prediction or the truth (a class in neither has no IoU and is left out)."""
    p, t = _flat(pred, true, valid)
    if p.size == 0:
        raise ValueError("no valid pixel to score")
    confusion = np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, -1)
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - inter
    present = union > 0
    return float(np.mean(inter[present] / union[present]))
