"""Labelled pictures: sample grids and GIFs of the evaluation, the `prepare` preview.

`labelled_grid` lays out tiles with a title, a header per row (left) and per column (top), an
optional red marker column (the end of the observed context) and, per row, a colour bar with units
(fields) or a class legend (class maps) on the right. Its geometry is fixed by `GridLayout`, so a
script can cut rows back out of a written grid (`scripts/sample_figure.py`). A tile that is `None`
is drawn blank and light grey with "not observed" (a context the setting did not see).
`labelled_movie` is the same grid over time, `save_movie` writes it as a GIF. Labels are drawn
with OpenCV's Hershey font: no extra dependency, and fast enough for one canvas per GIF frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from syncvp.io.atomic import atomic_path
from syncvp.viz import to_rgb


def display(
    frames: np.ndarray,
    kind: str = "image",
    lo: float | None = None,
    hi: float | None = None,
    valid: np.ndarray | None = None,
    classes: int = 0,
) -> np.ndarray:
    """`syncvp.viz.to_rgb`, plus class maps (`classes` > 0: gray-coded ids, see
    `syncvp.data.transforms.class_gray`) in the fixed `PALETTE`."""
    if classes:
        return class_colours(frames, classes)
    return to_rgb(frames, kind, lo, hi, valid)


# A fixed palette for class maps (RGB): class id i is always PALETTE[i] (Tableau 10, black,
# white, then a golden-ratio hue walk), so a class keeps its colour in every picture and every
# one of up to 256 classes has its own.
_FIRST = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (0, 0, 0), (255, 255, 255),
]  # fmt: skip


def _hue_walk(k: int) -> tuple[int, int, int]:
    h6 = ((k * 0.618033988749895) % 1.0) * 6
    x = 1 - abs(h6 % 2 - 1)
    rgb = [(1, x, 0), (x, 1, 0), (0, 1, x), (0, x, 1), (x, 0, 1), (1, 0, x)][int(h6) % 6]
    shade = 0.55 + 0.4 * ((k * 7) % 3) / 2  # three brightness steps, so neighbours in hue differ in shade
    return tuple(int(round(255 * shade * c)) for c in rgb)


PALETTE = np.array(_FIRST + [_hue_walk(k) for k in range(len(_FIRST), 256)], np.uint8)


def class_colours(frames: np.ndarray, num_classes: int) -> np.ndarray:
    """Gray-coded class ids (`syncvp.data.transforms.class_gray`) [T, H, W(, 1)] -> uint8 [T, H, W, 3]:
    each pixel in the colour of its nearest class (`syncvp.metrics.classes`)."""
    x = frames[..., 0] if frames.ndim == 4 else frames
    ids = np.rint(x.astype(np.float64) * (num_classes - 1) / 255.0).astype(np.int64)
    return PALETTE[np.clip(ids, 0, num_classes - 1)]


def class_names(attrs: dict) -> tuple[str, ...]:
    """A store modality's class names when it is a gray-coded class map (`encoding: class_gray`), else ()."""
    if attrs.get("encoding") != "class_gray":
        return ()
    names = [n for n in str(attrs.get("classes", "")).split(",") if n]
    return tuple(names) or tuple(str(i) for i in range(int(attrs.get("num_classes", 2))))


def display_scale(height: int) -> int:
    """The nearest-neighbour upscale factor that makes a frame about 96 px tall (at least 1)."""
    return max(1, 96 // max(height, 1))


@dataclass(frozen=True)
class ColourBar:
    """A field row's colour scale: turbo over [lo, hi] in `units`; `masked`: grey marks no data."""

    lo: float
    hi: float
    units: str
    masked: bool = False


@dataclass(frozen=True)
class Legend:
    """A class-map row's key: the class names in `PALETTE` order."""

    names: tuple[str, ...]


FONT, TEXT_SCALE, LINE_H = cv2.FONT_HERSHEY_SIMPLEX, 0.42, 15  # Hershey text: about 7 px per character
MARKER_RGB = (220, 30, 30)
BLANK_RGB = 225


@dataclass(frozen=True)
class GridLayout:
    """Where everything of a labelled grid sits (pixels; tiles already upscaled).

    Columns of `tile_w` with `pad` gaps right of a `label_w` header; a `marker_w` red column after
    the first `marker_after` tiles (None: no marker); a `bar_w` column on the right when `bar`.
    Rows of `tile_h` with `pad` gaps below a `title_h` title and a `head_h` column header.
    """

    rows: int
    cols: int
    tile_h: int
    tile_w: int
    marker_after: int | None = None
    bar: bool = False
    title: bool = True
    label_w: int = 170
    head_h: int = 20
    title_h: int = 22
    pad: int = 2
    marker_w: int = 6
    bar_w: int = 118

    @property
    def top(self) -> int:
        return (self.title_h if self.title else 0) + self.head_h

    def row_y(self, i: int) -> int:
        return self.top + i * (self.tile_h + self.pad)

    def col_x(self, j: int) -> int:
        shift = self.marker_w + self.pad if self.marker_after is not None and j >= self.marker_after else 0
        return self.label_w + j * (self.tile_w + self.pad) + shift

    @property
    def marker_x(self) -> int | None:
        """The marker column's left edge (None without a marker)."""
        if self.marker_after is None:
            return None
        return self.label_w + self.marker_after * (self.tile_w + self.pad)

    @property
    def bar_x(self) -> int:
        return self.col_x(self.cols)

    @property
    def shape(self) -> tuple[int, int]:
        return self.row_y(self.rows), self.bar_x + (self.bar_w if self.bar else 0)

    @classmethod
    def of_image(cls, shape: tuple[int, ...], tile: tuple[int, int], cols: int, marker_after: int | None, **kw):
        """The layout of a written grid, given its tile size and columns (rows and bar from the size)."""
        base = cls(0, cols, *tile, marker_after, **kw)
        rows = (shape[0] - base.top) // (tile[0] + base.pad)
        return cls(rows, cols, *tile, marker_after, bar=shape[1] > base.shape[1], **kw)


def put_text(image: np.ndarray, text: str, x: int, y: int, colour=(0, 0, 0), scale: float = TEXT_SCALE) -> None:
    """Draw one line of text with its baseline at y (in place)."""
    cv2.putText(image, text, (int(x), int(y)), FONT, scale, colour, 1, cv2.LINE_AA)


def text_width(text: str, scale: float = TEXT_SCALE) -> int:
    return cv2.getTextSize(text, FONT, scale, 1)[0][0]


def _lines(image: np.ndarray, lines: Sequence[str], x: int, y: int, height: int, width: int, colour=(0, 0, 0)):
    """As many lines as fit in a box of `height` at (x, y), vertically centred, cut to `width`."""
    fit = lines[: max(1, height // LINE_H)]
    y0 = y + (height - len(fit) * LINE_H) // 2 + LINE_H - 4
    for k, line in enumerate(fit):
        while len(line) > 1 and text_width(line) > width:
            line = line[:-1]
        put_text(image, line, x, y0 + k * LINE_H, colour)


def _fmt(value: float) -> str:
    return f"{value:.5g}"


def _draw_key(image: np.ndarray, key: ColourBar | Legend, x: int, y: int, h: int, w: int) -> None:
    if isinstance(key, ColourBar):
        ramp = to_rgb(np.linspace(key.hi, key.lo, h, dtype=np.float64)[None, :, None], "field", key.lo, key.hi)[0]
        image[y : y + h, x + 4 : x + 18] = ramp
        put_text(image, _fmt(key.hi), x + 22, y + 11)
        put_text(image, _fmt(key.lo), x + 22, y + h - 2)
        put_text(image, key.units or "(no units)", x + 22, y + h // 2 + 4)
        if key.masked and h >= 4 * LINE_H:
            image[y + h // 2 + 10 : y + h // 2 + 20, x + 22 : x + 32] = 128
            put_text(image, "no data", x + 36, y + h // 2 + 19)
        return
    n = max(1, min(len(key.names), h // 12))
    for i, name in enumerate(key.names[:n]):
        yy = y + i * 12
        image[yy + 2 : yy + 11, x + 4 : x + 13] = PALETTE[i % len(PALETTE)]
        put_text(image, name, x + 17, yy + 10, scale=0.35)


def labelled_grid(
    tiles: Sequence[Sequence[np.ndarray | None]],
    row_labels: Sequence[Sequence[str]],
    col_labels: Sequence[str],
    scale: int = 1,
    marker_after: int | None = None,
    keys: Sequence[ColourBar | Legend | None] | None = None,
    title: str | None = None,
) -> np.ndarray:
    """Tiles [row][col] (uint8 [H, W, 3], equal sizes, or None: not observed) -> one labelled RGB image.

    `row_labels[i]` are the lines of row i's header, `col_labels[j]` column j's header, `keys[i]`
    row i's colour bar or legend; tiles are upscaled `scale` times (nearest neighbour).
    """
    first = next(t for row in tiles for t in row if t is not None)
    return _Canvas.build(first.shape[:2], row_labels, col_labels, scale, marker_after, keys, title).paste(tiles)


def spread_scale(maps: np.ndarray) -> float:
    """A spread map's colour scale: [0, the largest finite value rounded up to 2 significant digits]."""
    finite = maps[np.isfinite(maps)]
    top = float(finite.max()) if finite.size else 0.0
    if top <= 0:
        return 1.0
    step = 10.0 ** (np.floor(np.log10(top)) - 1)
    return float(np.ceil(top / step) * step)


def spread_grid(rows: Sequence[tuple[Sequence[str], np.ndarray, float, str]], title: str) -> np.ndarray:
    """Spread maps as a labelled grid: per row (label lines, maps [T, H, W] >= 0 with NaN = no data,
    scale top, units), turbo over [0, top] with a colour bar, one column per lead frame `t=+k`."""
    tiles, names, keys = [], [], []
    for label, maps, top, units in rows:
        valid = np.isfinite(maps)
        tiles.append(list(display(np.nan_to_num(maps), kind="field", lo=0.0, hi=top, valid=valid)))
        names.append(list(label))
        keys.append(ColourBar(0.0, top, units, not valid.all()))
    heads = [f"t=+{t + 1}" for t in range(len(tiles[0]))]
    return labelled_grid(tiles, names, heads, display_scale(tiles[0][0].shape[0]), None, keys, title)


@dataclass
class _Canvas:
    """The static part of a labelled grid (headers, keys, marker), pasted over with tiles per frame."""

    layout: GridLayout
    background: np.ndarray
    scale: int

    @classmethod
    def build(cls, tile_hw, row_labels, col_labels, scale, marker_after, keys, title) -> _Canvas:
        keys = list(keys) if keys is not None else [None] * len(row_labels)
        layout = GridLayout(
            len(row_labels),
            len(col_labels),
            tile_hw[0] * scale,
            tile_hw[1] * scale,
            marker_after,
            bar=any(k is not None for k in keys),
            title=title is not None,
        )
        image = np.full((*layout.shape, 3), 255, np.uint8)
        if title is not None:
            _lines(image, [title], 4, 0, layout.title_h, image.shape[1] - 8)
        head_y = layout.top - layout.head_h
        for j, text in enumerate(col_labels):
            x = layout.col_x(j) + (layout.tile_w - min(text_width(text), layout.tile_w)) // 2
            _lines(image, [text], x, head_y, layout.head_h, layout.tile_w)
        for i, lines in enumerate(row_labels):
            y = layout.row_y(i)
            _lines(image, lines, 4, y, layout.tile_h, layout.label_w - 8)
            if keys[i] is not None:
                _draw_key(image, keys[i], layout.bar_x, y, layout.tile_h, layout.bar_w)
        if layout.marker_x is not None:
            image[head_y:, layout.marker_x + layout.pad : layout.marker_x + layout.pad + layout.marker_w] = MARKER_RGB
        return cls(layout, image, scale)

    def paste(self, tiles, title: str | None = None, title_rgb=(255, 255, 255)) -> np.ndarray:
        out, lay = self.background.copy(), self.layout
        if title is not None:
            out[: lay.title_h] = title_rgb
            _lines(out, [title], 4, 0, lay.title_h, out.shape[1] - 8)
        for i, row in enumerate(tiles):
            y = lay.row_y(i)
            for j, tile in enumerate(row):
                x = lay.col_x(j)
                box = out[y : y + lay.tile_h, x : x + lay.tile_w]
                if tile is None:
                    box[:] = BLANK_RGB
                    if lay.tile_h >= 2 * LINE_H and lay.tile_w >= 40:  # text only where it fits
                        _lines(box, ["not", "observed"], 4, 0, lay.tile_h, lay.tile_w - 6, (90, 90, 90))
                elif self.scale > 1:
                    box[:] = cv2.resize(tile, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_NEAREST)
                else:
                    box[:] = tile
        return out


def labelled_movie(
    frames: Sequence[Sequence[np.ndarray | None]],
    row_labels: Sequence[Sequence[str]],
    col_labels: Sequence[str],
    titles: Sequence[str],
    scale: int = 1,
    keys: Sequence[ColourBar | Legend | None] | None = None,
    marked: Sequence[bool] | None = None,
) -> np.ndarray:
    """A labelled grid per time step: frames [row][col] are sequences of T tiles (uint8 [H, W, 3]
    or None: not observed at that step); title t names step t, drawn on a red-tinted band where
    `marked[t]` (the predicted steps). Returns uint8 [T, H', W', 3]."""
    steps = len(titles)
    first = next(tile for row in frames for f in row for tile in f if tile is not None)
    canvas = _Canvas.build(first.shape[:2], row_labels, col_labels, scale, None, keys, titles[0])
    out = []
    for t in range(steps):
        tiles = [[f[t] for f in row] for row in frames]
        tint = (255, 215, 215) if marked is not None and marked[t] else (255, 255, 255)
        out.append(canvas.paste(tiles, titles[t], tint))
    return np.stack(out)


def save_movie(path: str | Path, frames: np.ndarray, fps: float = 4.0) -> Path:
    """Write [T, H, W, 3] uint8 frames as a looping GIF, atomically.

    One 256-colour palette for the whole animation (fast octree over every second pixel of every
    frame, no dithering): colours do not flicker between frames, and it is much faster than
    quantising each large frame on its own (what `syncvp.viz.save_gif` leaves to Pillow).
    """
    from PIL import Image

    path = Path(path)
    mosaic = Image.fromarray(np.ascontiguousarray(np.concatenate(list(frames[:, ::2, ::2]), axis=0)))
    palette = mosaic.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000.0 / fps), loop=0)
    return path
