"""Class maps (a categorical modality such as SYNTHIA's or the synthetic scenes' `semantic`): how
stored gray levels map to class ids, the decoding of a prediction to the nearest class, pixel
accuracy and mean IoU, and a fixed palette for pictures.

A clip store says a modality is categorical in its attributes (`syncvp.data.store`):

| `encoding` | stored value of class k (K classes) | written by |
| --- | --- | --- |
| `class_id` | k | the synthetic generator (`classes`: the names, comma-separated) |
| `class_gray` | round(k * 255 / (K - 1)) (SYNTHIA: k * 17) | SYNTHIA (`num_classes`, `classes`) |

A model predicts such a map as a gray image; `to_ids` takes each pixel to the class whose level
is nearest (ties to the lower class), so the scores below compare class ids, never gray values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

ENCODINGS = ("class_id", "class_gray")

# the first colours: distinct and readable on screen (Tableau 10); later classes: a golden-ratio hue walk
_BASE = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


@dataclass(frozen=True)
class ClassCoding:
    """How a categorical modality is stored: class k is the gray level `levels[k]` (0-255 units).

    Attributes:
        names: the class names (k -> name), or "class k" where the store gives none.
        levels: the stored value of each class, increasing.
    """

    names: tuple[str, ...]
    levels: tuple[float, ...]

    @property
    def num_classes(self) -> int:
        return len(self.levels)

    def to_ids(self, values: np.ndarray) -> np.ndarray:
        """Class ids (int64) of gray values in 0-255 units: the nearest level, ties to the lower class."""
        levels = np.asarray(self.levels, np.float64)
        mids = (levels[1:] + levels[:-1]) / 2
        return np.searchsorted(mids, np.asarray(values, np.float64), side="left").astype(np.int64)


def class_coding(attrs: Mapping) -> ClassCoding | None:
    """The coding of a stored modality from its attributes, or None when it is not categorical.

    Raises:
        ValueError: a categorical encoding without its class count or names (a store this code did
            not write).
    """
    encoding = attrs.get("encoding")
    if encoding not in ENCODINGS:
        return None
    names = tuple(n for n in str(attrs.get("classes", "")).split(",") if n)
    count = int(attrs.get("num_classes", len(names)))
    if count < 2 or (names and len(names) != count):
        raise ValueError(f"a {encoding} modality needs num_classes >= 2 matching its class names, got {attrs}")
    names = names or tuple(f"class {k}" for k in range(count))
    ids = np.arange(count, dtype=np.float64)
    levels = ids if encoding == "class_id" else np.round(ids * 255.0 / (count - 1))
    return ClassCoding(names=names, levels=tuple(float(v) for v in levels))


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


def palette(num_classes: int) -> np.ndarray:
    """A fixed RGB colour (uint8) per class: the same class has the same colour in every picture."""
    colours = list(_BASE[:num_classes])
    for k in range(len(colours), num_classes):
        hue = (k * 0.618033988749895) % 1.0
        h6 = hue * 6
        x = 1 - abs(h6 % 2 - 1)
        r, g, b = [(1, x, 0), (x, 1, 0), (0, 1, x), (0, x, 1), (x, 0, 1), (1, 0, x)][int(h6) % 6]
        colours.append(tuple(int(round(40 + 200 * c)) for c in (r, g, b)))
    return np.asarray(colours, np.uint8).reshape(num_classes, 3)


def colorize(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """RGB pictures (`ids.shape + (3,)`, uint8) of class-id maps, with `palette`."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(f"class ids must lie in [0, {num_classes}), got {ids.min()}..{ids.max()}")
    return palette(num_classes)[ids]
