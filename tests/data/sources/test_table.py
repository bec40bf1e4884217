"""The table of source kinds: it covers every source config kind, each module has the interface,
and a kind added with one table line (plus its config class) is picked up by prepare, the raw
videos of the pseudo-depth stage and the `pipeline` fan-out."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import pytest
import yaml

from syncvp.config.data import Source
from syncvp.config.pipeline import expected_pipeline
from syncvp.data import prepare
from syncvp.data.raw import RawVideo
from syncvp.data.sources import SOURCES, raw_videos, source_kind

REPO = Path(__file__).resolve().parents[3]
CONFIG_CLASSES = typing.get_args(Source)


def config_kind(cls) -> str:
    (kind,) = typing.get_args(typing.get_type_hints(cls)["kind"])
    return kind


def test_the_table_covers_every_source_config_kind():
    assert sorted(config_kind(cls) for cls in CONFIG_CLASSES) == sorted(SOURCES)


def test_every_kind_module_has_the_interface():
    for kind, module in SOURCES.items():
        assert callable(module.dataset_constants) and callable(module.prepare_split), kind
        assert module.raw_videos is None or callable(module.raw_videos), kind


def test_every_producer_is_a_stage_of_dvc_yaml():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    producers = {config_kind(cls): cls.producer for cls in CONFIG_CLASSES}
    assert producers == {"synthetic_video": "synthesize", "synthetic_era5": "synthesize", "era5": "download_era5",
                         "synthia": None, "image_sequence": None, "video": None}
    assert {p for p in producers.values() if p} <= set(stages)


@dataclass(frozen=True, kw_only=True)
class DummySource:
    """A source config class as a new kind would add one."""

    kind: Literal["dummy"]
    root: Path

    provides = ("rgb", "depth")
    producer = "synthesize"

    def input_dir(self, name: str, paths) -> Path:
        return self.root


class DummyKind:
    """A source kind module as a new kind would add one (recording how it is called)."""

    calls: list = []

    @classmethod
    def dataset_constants(cls, name, cfg, paths) -> dict:
        cls.calls.append(("constants", name))
        return {"scale": 2}

    @classmethod
    def prepare_split(cls, name, cfg, paths, split, constants, progress=None):
        cls.calls.append(("prepare", name, split, constants))
        return f"store of {split}"

    @classmethod
    def raw_videos(cls, name, cfg, raw_dir) -> list[RawVideo]:
        return [RawVideo(split="train", video_id="clip-0", files=(Path(raw_dir) / "clip.bin",), load=lambda: None)]


def test_a_kind_added_with_one_table_line_is_picked_up(monkeypatch, tmp_path):
    cfg = SimpleNamespace(source=DummySource(kind="dummy", root=tmp_path), modalities=("rgb", "depth"),
                          pseudo_depth=None)
    with pytest.raises(ValueError, match="source kind 'dummy' has no module in syncvp.data.sources"):
        source_kind("d", cfg)
    monkeypatch.setitem(SOURCES, "dummy", DummyKind)   # the one table line
    monkeypatch.setattr(DummyKind, "calls", [])
    constants = prepare.dataset_constants("d", cfg, None)
    assert prepare.prepare_split("d", cfg, None, "val", constants) == "store of val"
    assert DummyKind.calls == [("constants", "d"), ("prepare", "d", "val", {"scale": 2})]
    assert [v.video_id for v in raw_videos("d", cfg, tmp_path)] == ["clip-0"]
    fanout = expected_pipeline({"d": cfg}, SimpleNamespace(), ())
    assert fanout["synthesize"] == ["d"] and fanout["download_era5"] == [] and fanout["prepare"] == {"d": str(tmp_path)}


def test_a_kind_without_rgb_frames_has_no_raw_videos(monkeypatch, tmp_path):
    cfg = SimpleNamespace(source=DummySource(kind="dummy", root=tmp_path))
    monkeypatch.setitem(SOURCES, "dummy", SimpleNamespace(raw_videos=None))
    with pytest.raises(ValueError, match=r"source kind 'dummy' has no raw RGB videos \(known: \['image_sequence', "
                                         r"'synthetic_video', 'synthia', 'video'\]\)"):
        raw_videos("d", cfg, tmp_path)
