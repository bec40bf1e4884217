"""The file contract (`syncvp.config.layout`): each answer for a hand-written `paths` section."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncvp.config import FieldError, PathsConfig, RolePair, parse_unit
from syncvp.config.layout import autoencoder_unit, batch_file, depth_file, latent_cache_name, single_unit, split_file

PATHS = PathsConfig(
    raw=Path("d/raw"), interim=Path("d/interim"), processed=Path("d/clips"), models=Path("m"), eval=Path("e")
)


def test_dataset_folders_and_clip_stores():
    assert PATHS.raw_dir("bair") == Path("d/raw/bair")
    assert PATHS.interim_dir("bair") == Path("d/interim/bair")
    assert depth_file(PATHS.interim_dir("bair"), "train-0001") == Path("d/interim/bair/depth/train-0001.npz")
    stores = PATHS.clip_stores("bair")
    assert stores.root == PATHS.processed_dir("bair") == Path("d/clips/bair")
    assert [stores.store(s) for s in ("train", "val", "test")] == [
        Path(f"d/clips/bair/{s}.nc") for s in ("train", "val", "test")
    ]
    assert PATHS.store("bair", "val") == Path("d/clips/bair/val.nc")
    assert (stores.summary, stores.preview) == (Path("d/clips/bair/summary.json"), Path("d/clips/bair/preview.png"))
    assert split_file(Path("tmp"), "test") == Path("tmp/test.nc")
    with pytest.raises(FieldError, match="split"):
        PATHS.store("bair", "dev")


def test_unit_names_round_trip():
    assert autoencoder_unit("bair", "rgb", "context") == "bair-rgb-context"
    assert single_unit("bair", "depth") == "bair-depth"
    assert parse_unit("bair-rgb-future") == ("bair", "rgb", "future")
    assert parse_unit("bair-rgb") == ("bair", "rgb", None)
    with pytest.raises(ValueError, match="bair-rgb-past"):
        parse_unit("bair-rgb-past")


def test_autoencoder_files():
    f = PATHS.autoencoder("bair", "rgb", "future")
    assert f.root == PATHS.model_dir("bair-rgb-future") == Path("m/bair-rgb-future")
    assert f.model == Path("m/bair-rgb-future/autoencoder.pt")
    assert f.metrics == Path("m/bair-rgb-future/metrics.json")
    assert f.reconstruction == Path("m/bair-rgb-future/reconstruction.png")
    assert f.live == Path("m/bair-rgb-future/dvclive")
    assert f.live_plot("psnr") == Path("m/bair-rgb-future/dvclive/plots/metrics/psnr.tsv")
    assert f.live_metrics == Path("m/bair-rgb-future/dvclive/metrics.json")
    assert f.work == Path("m/bair-rgb-future/work")
    assert f.checkpoint("finetune_gan") == Path("m/bair-rgb-future/work/finetune_gan.pt")
    assert f.status == Path("m/bair-rgb-future/work/status.json")


def test_diffusion_files():
    single, joint = PATHS.single("bair", "depth"), PATHS.joint("bair")
    assert single.model == Path("m/bair-depth/diffusion.pt")
    assert joint.model == Path("m/bair/joint.pt")
    assert joint.metrics == Path("m/bair/metrics.json") and joint.timings == Path("m/bair/timings.json")
    assert single.loss_plot == Path("m/bair-depth/loss.png")
    assert single.plot("context") == Path("m/bair-depth/plots/context.tsv")
    assert joint.live_plots == Path("m/bair/dvclive/plots")
    assert joint.live_plot("loss_rgb") == Path("m/bair/dvclive/plots/metrics/loss_rgb.tsv")
    assert joint.checkpoint == Path("m/bair/work/train.pt")
    assert single.work / latent_cache_name("depth", "0123") == Path("m/bair-depth/work/latents-depth-0123.pt")


def test_evaluation_files():
    f = PATHS.evaluation("bair")
    assert f.root == PATHS.eval_dir("bair") == Path("e/bair")
    assert f.metrics == Path("e/bair/metrics.json")
    assert (f.plots, f.samples) == (Path("e/bair/plots"), Path("e/bair/samples"))
    assert f.uncertainty == Path("e/bair/uncertainty")
    assert f.table("compare.md") == Path("e/bair/tables/compare.md")
    assert (f.work, f.run("abc")) == (Path("e/bair/work"), Path("e/bair/work/abc"))
    assert batch_file(f.run("abc"), "all", 3) == Path("e/bair/work/abc/all/batch-0003.npz")
    assert batch_file(f.run("abc"), "all", 3, "samples") == Path("e/bair/work/abc/all/samples-0003.npz")


def test_role_pair_names_its_parts():
    pair = RolePair(context="c.pt", future="f.pt")
    assert (pair.of("context"), pair.of("future")) == ("c.pt", "f.pt")
    assert pair.map(str.upper) == RolePair(context="C.PT", future="F.PT")
    with pytest.raises(ValueError, match="past"):
        pair.of("past")
    with pytest.raises(TypeError):
        tuple(pair)  # no positional use


def test_model_file_hints_name_the_layouts_files():
    """`syncvp.io` (below config) keeps its own rerun-hint table; it must name the layout's model files."""
    from syncvp.io.model_file import STAGE_OF

    assert STAGE_OF == {
        PATHS.autoencoder("d", "m", "future").model.name: "train_autoencoder",
        PATHS.single("d", "m").model.name: "train_single",
        PATHS.joint("d").model.name: "train_joint",
    }
