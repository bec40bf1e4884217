"""tables/compare.md from a small hand-written metrics.json, and `make repro`'s summary printing it."""

from __future__ import annotations

import json

from pipelines.summary import describe
from syncvp.evaluation.compare import cell, compare_markdown


def fake_metrics() -> dict:
    """Two modalities, conditions all + rgb + complete-rgb, N = 2 for the models, one trajectory for
    the references."""
    leaf = dict

    def setting(rgb, depth, pair=None):
        out = {"rgb": rgb, "depth": depth}
        if pair is not None:
            out["rgb+depth"] = pair
        return {"standard": out, "paper": {"rgb": {"ssim": 9.0}, "depth": {"l2": 99.0}}}

    return {
        "synthetic": {
            "all": setting(
                leaf(
                    fvd=412.345,
                    ssim=0.61234,
                    ssim_mean=0.59812,
                    psnr=17.123,
                    psnr_mean=16.5,
                    lpips=0.21234,
                    lpips_mean=0.2345,
                ),
                leaf(ssim=0.5, ssim_mean=0.45, l2=0.123456, l2_mean=0.13),
                leaf(alignment=0.7, alignment_mean=0.65, flicker=0.512, flicker_mean=0.6),
            ),
            "rgb": setting(
                leaf(ssim=0.6, ssim_mean=0.58),
                leaf(ssim=0.4, ssim_mean=0.35, l2=0.2, l2_mean=0.21),
                leaf(alignment=0.6, alignment_mean=0.55),
            ),
            "complete-rgb": {  # the given rgb is not scored; its pair keeps alignment and flicker
                "standard": {
                    "depth": leaf(ssim=0.45, ssim_mean=0.4, l2=0.18, l2_mean=0.19),
                    "rgb+depth": leaf(alignment=0.65, alignment_mean=0.6, flicker=1.234, flicker_mean=1.5),
                }
            },
            "single-all": setting(
                leaf(ssim=0.55, ssim_mean=0.5),
                leaf(ssim=0.48, ssim_mean=0.44, l2=0.15, l2_mean=0.16),
                leaf(alignment=0.5, alignment_mean=0.45),
            ),
            "single-rgb": setting(
                leaf(ssim=0.55, ssim_mean=0.5),
                leaf(ssim=0.3, ssim_mean=0.25, l2=0.3, l2_mean=0.31),
                leaf(alignment=0.4, alignment_mean=0.35),
            ),
            "copy_last": setting(
                leaf(ssim=0.62, ssim_mean=0.62),
                leaf(ssim=0.76, ssim_mean=0.76, l2=0.07, l2_mean=0.07),
                leaf(alignment=0.3, alignment_mean=0.3),
            ),
            "autoencoder": setting(
                leaf(ssim=0.9, ssim_mean=0.9),
                leaf(ssim=0.95, ssim_mean=0.95, l2=0.01, l2_mean=0.01),
                leaf(alignment=0.8, alignment_mean=0.8),
            ),
            "ground_truth": {"standard": {"rgb+depth": {"alignment": 0.85, "alignment_mean": 0.85, "flicker": 0.25}}},
        }
    }


EXPECTED = """\
### synthetic: the joint model next to the references (standard mode; cells: best of N / mean over N)

| observed → scored | metric | joint | single | copy-last | autoencoder |
| --- | --- | --- | --- | --- | --- |
| all → rgb | fvd ↓ | 412.3 | – | – | – |
| all → rgb | ssim ↑ | 0.612 / 0.598 | 0.550 / 0.500 | 0.620 | 0.900 |
| all → rgb | psnr ↑ | 17.12 / 16.50 | – | – | – |
| all → rgb | lpips ↓ | 0.212 / 0.234 | – | – | – |
| all → depth | ssim ↑ | 0.500 / 0.450 | 0.480 / 0.440 | 0.760 | 0.950 |
| all → depth | l2 ↓ | 0.1235 / 0.1300 | 0.1500 / 0.1600 | 0.0700 | 0.0100 |
| rgb only → depth | ssim ↑ | 0.400 / 0.350 | 0.300 / 0.250 | – | 0.950 |
| rgb only → depth | l2 ↓ | 0.2000 / 0.2100 | 0.3000 / 0.3100 | – | 0.0100 |

Cross-modal pair metrics: alignment (the second modality's edges within 1 px of the first's, beyond chance: 1 all, 0 chance) and flicker (the second modality's frame-to-frame change, 0-255 levels, where the first's ground truth stands still):

| observed → scored | metric | joint | single | copy-last | autoencoder | ground truth |
| --- | --- | --- | --- | --- | --- | --- |
| all → rgb+depth | alignment ↑ | 0.700 / 0.650 | 0.500 / 0.450 | 0.300 | 0.800 | 0.850 |
| rgb only → rgb+depth | alignment ↑ | 0.600 / 0.550 | 0.400 / 0.350 | – | 0.800 | 0.850 |
| rgb given → rgb+depth | alignment ↑ | 0.650 / 0.600 | – | – | 0.800 | 0.850 |
| all → rgb+depth | flicker ↓ | 0.51 / 0.60 | – | – | – | 0.25 |
| rgb given → rgb+depth | flicker ↓ | 1.23 / 1.50 | – | – | – | 0.25 |

Modality completion (every frame of one modality given, the other sampled for the same frames; forecast columns: the joint model from the context frames alone):

| given → completed | metric | completion | forecast, given only observed | forecast, all observed | single | copy-last | autoencoder |
| --- | --- | --- | --- | --- | --- | --- | --- |
| rgb given → depth | ssim ↑ | 0.450 / 0.400 | 0.400 / 0.350 | 0.500 / 0.450 | 0.480 / 0.440 | 0.760 | 0.950 |
| rgb given → depth | l2 ↓ | 0.1800 / 0.1900 | 0.2000 / 0.2100 | 0.1235 / 0.1300 | 0.1500 / 0.1600 | 0.0700 | 0.0100 |
"""


def test_compare_table_content():
    assert compare_markdown(fake_metrics(), "synthetic", "joint", ("rgb", "depth")) == EXPECTED


def test_cells_and_missing_values():
    assert cell({"ssim": 0.5, "ssim_mean": 0.5}, "ssim") == "0.500"
    assert cell({"l2": "nan"}, "l2") == "nan" and cell(None, "l2") == "–" and cell({"ssim": 1.0}, "l2") == "–"
    old = {"synthetic": {"all": {"paper": {"rgb": {"ssim": 0.4}}}, "copy_last": {"paper": {"rgb": {"ssim": 0.5}}}}}
    table = compare_markdown(old, "synthetic", "single")  # an older run: paper mode only, no references
    assert "(paper mode" in table and "| all → rgb | ssim ↑ | 0.400 | – | 0.500 | – |" in table
    assert "the stage-1 model" in table and "alignment" not in table


def test_summary_prints_the_table_or_says_it_is_missing(tiny_params):
    assert "synthetic: comparison table not produced yet" in describe(tiny_params)
    out = tiny_params.paths.eval_dir("synthetic")
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(fake_metrics()))
    assert EXPECTED.rstrip("\n") in describe(tiny_params)  # rebuilt from metrics.json
    (out / "tables").mkdir()
    (out / "tables" / "compare.md").write_text("| the | table |\n")
    assert describe(tiny_params).endswith("| the | table |")


def test_flow_column_when_the_flow_reference_was_computed():
    data = fake_metrics()
    data["synthetic"]["flow"] = {
        "standard": {"rgb": {"ssim": 0.7}, "depth": {"ssim": 0.8, "l2": 0.05}, "rgb+depth": {"alignment": 0.66}}
    }
    table = compare_markdown(data, "synthetic", "joint", ("rgb", "depth"))
    assert "| observed → scored | metric | joint | single | copy-last | flow | autoencoder |" in table
    assert "| all → rgb | ssim ↑ | 0.612 / 0.598 | 0.550 / 0.500 | 0.620 | 0.700 | 0.900 |" in table
    assert "| all → depth | l2 ↓ | 0.1235 / 0.1300 | 0.1500 / 0.1600 | 0.0700 | 0.0500 | 0.0100 |" in table
    # an unobserved modality has no last frame to carry on
    assert "| rgb only → depth | ssim ↑ | 0.400 / 0.350 | 0.300 / 0.250 | – | – | 0.950 |" in table
    assert "| all → rgb+depth | alignment ↑ | 0.700 / 0.650 | 0.500 / 0.450 | 0.300 | 0.660 | 0.800 | 0.850 |" in table
    assert "| rgb only → rgb+depth | alignment ↑ | 0.600 / 0.550 | 0.400 / 0.350 | – | – | 0.800 | 0.850 |" in table
