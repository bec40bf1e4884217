"""Labelled grids and GIFs (`syncvp.figures`): geometry, the context marker, blank unobserved tiles,
colour bars, the class palette; and the labelled `prepare` preview."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from syncvp import figures
from syncvp.data.prepare import preview
from syncvp.data.transforms import class_gray
from tests.evaluation.conftest import FRAMES, SIZE, VIDEOS, write_field_store, write_test_store


def _tiles(rows: int, cols: int, h: int = 4, w: int = 5) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(0)
    return [[rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(cols)] for _ in range(rows)]


def test_labelled_grid_geometry_marker_and_blank_tiles():
    tiles = _tiles(2, 3)
    tiles[1][0] = None  # an unobserved context frame
    bar = figures.ColourBar(250.0, 300.0, "K")
    image = figures.labelled_grid(tiles, [["a"], ["b"]], ["t=0", "+1", "+2"], 2, 1, [bar, None], "title")
    # title 22 + header 20 + 2 rows of (4 * 2 + 2 pad); label 170 + 3 columns of (5 * 2 + 2) + marker 6 + pad 2 + bar 118
    assert image.shape == (22 + 20 + 2 * 10, 170 + 3 * 12 + 8 + 118, 3)
    lay = figures.GridLayout(2, 3, 8, 10, marker_after=1, bar=True)
    assert (lay.row_y(1), lay.col_x(0), lay.col_x(1), lay.marker_x, lay.bar_x) == (52, 170, 190, 182, 214)
    for i, j in ((0, 0), (0, 2), (1, 1)):  # every tile upscaled 2x by nearest neighbour, where the layout says
        y, x = lay.row_y(i), lay.col_x(j)
        assert np.array_equal(image[y : y + 8, x : x + 10], np.kron(tiles[i][j], np.ones((2, 2, 1), np.uint8)))
    # the red marker: from the column header down, between the context column and the first predicted one
    assert (image[lay.top - lay.head_h :, 184:190] == figures.MARKER_RGB).all()
    assert (
        not (image[lay.top :, 183] == figures.MARKER_RGB).all()
        and not (image[lay.top :, 190] == figures.MARKER_RGB).all()
    )
    blank = image[lay.row_y(1) : lay.row_y(1) + 8, lay.col_x(0) : lay.col_x(0) + 10]
    assert (blank == figures.BLANK_RGB).all()  # drawn blank (too small for the "not observed" text)
    # the colour bar: turbo from hi (top) to lo (bottom) beside row 0, none beside row 1
    ramp = image[lay.row_y(0) : lay.row_y(0) + 8, lay.bar_x + 10]
    top, bottom = figures.to_rgb(np.array([[[300.0, 250.0]]]), "field", 250.0, 300.0)[0, 0]
    assert np.array_equal(ramp[0], top) and np.array_equal(ramp[-1], bottom)
    assert (image[lay.row_y(1) : lay.row_y(1) + 8, lay.bar_x + 4 : lay.bar_x + 18] == 255).all()


def test_layout_of_a_written_grid_is_recovered():
    image = figures.labelled_grid(_tiles(5, 4), [["r"]] * 5, ["a", "b", "c", "d"], 3, 2, None, "t")
    lay = figures.GridLayout.of_image(image.shape, (12, 15), 4, 2)
    assert (lay.rows, lay.bar, lay.shape) == (5, False, image.shape[:2])
    with_bar = figures.labelled_grid(
        _tiles(5, 4), [["r"]] * 5, ["a", "b", "c", "d"], 3, 2, [figures.Legend(("x",))] * 5, "t"
    )
    assert figures.GridLayout.of_image(with_bar.shape, (12, 15), 4, 2).bar


def test_class_maps_take_the_fixed_palette():
    ids = np.array([[[0, 1], [2, 6]]])
    assert np.array_equal(figures.display(class_gray(ids, 7), classes=7), figures.PALETTE[ids])
    assert figures.class_names({"encoding": "class_gray", "classes": "sky,road", "num_classes": 2}) == ("sky", "road")
    assert figures.class_names({"encoding": "rgb"}) == ()


def test_movie_keeps_labels_and_tints_the_marked_steps(tmp_path):
    frames = [[[t] * 3 for t in row] for row in _tiles(2, 2)]  # 3 steps of static tiles
    frames[0][1] = [None, *frames[0][1][1:]]  # not observed at step 0
    movie = figures.labelled_movie(
        frames, [["a"], ["b"]], ["gt", "pred"], ["t=0", "+1", "+2"], 2, None, [False, True, True]
    )
    lay = figures.GridLayout(2, 2, 8, 10)
    assert movie.shape == (3, *lay.shape, 3)
    assert not np.array_equal(movie[1, : lay.top], movie[2, : lay.top])  # the step's title differs
    assert np.array_equal(movie[0, lay.top :, : lay.label_w], movie[2, lay.top :, : lay.label_w])  # row labels kept
    assert (movie[0, 0, -1] == 255).all() and np.array_equal(movie[1, 0, -1], [255, 215, 215])  # tinted band
    y, x = lay.row_y(0), lay.col_x(1)
    assert (movie[0, y, x : x + 10] == figures.BLANK_RGB).all()
    assert np.array_equal(movie[1, y : y + 8, x : x + 10], np.kron(frames[0][1][1], np.ones((2, 2, 1), np.uint8)))
    path = figures.save_movie(tmp_path / "m.gif", movie)
    back = iio.imread(path)
    assert back.shape[:3] == movie.shape[:3]
    assert np.abs(back[..., :3].astype(int) - movie).mean() < 4  # one shared 256-colour palette


@pytest.mark.parametrize("fields", [True, False])
def test_prepare_preview_names_variables_and_draws_colour_bars(tiny_params, tmp_path, fields):
    paths = tiny_params.paths
    path = write_field_store(paths) if fields else write_test_store(paths)
    image = iio.imread(preview(path, tmp_path / "preview.png", videos=2, frames=4))
    scale = figures.display_scale(SIZE)
    lay = figures.GridLayout(2 * 2, min(4, FRAMES), SIZE * scale, SIZE * scale, bar=fields)
    assert image.shape[:2] == lay.shape and VIDEOS >= 2
    if fields:  # t2m's bar runs from 300 K (top) to 250 K (bottom); sp's from 1.05e5 Pa
        ramp = image[lay.row_y(0) : lay.row_y(0) + lay.tile_h, lay.bar_x + 10]
        top, bottom = figures.to_rgb(np.array([[[300.0, 250.0]]]), "field", 250.0, 300.0)[0, 0]
        assert np.array_equal(ramp[0], top) and np.array_equal(ramp[-1], bottom)
        y, x = lay.row_y(0), lay.col_x(0)
        assert (image[y : y + lay.tile_h, x : x + 3 * scale] == 128).all()  # the fixed sea mask (3 columns) in grey
