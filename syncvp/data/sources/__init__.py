"""The table of source kinds: `datasets.<name>.source.kind` -> the module that reads that kind.

Every kind module has the same small interface:

- `dataset_constants(name, cfg, paths) -> dict`: JSON-able values every split needs, computed
  once before any split is built (ERA5: the normalisation constants); {} for most kinds;
- `prepare_split(name, cfg, paths, split, constants, progress) -> xr.Dataset`: the clip store
  of one split, in memory (`store.write_store` writes it);
- `raw_videos(name, cfg, raw_dir) -> list[RawVideo]`: the RGB videos the `pseudo_depth` stage
  estimates depth from, or `raw_videos = None` for a kind without RGB frames.

The stage that produces a kind's input (`synthesize`, `download_era5`, or None for a folder the
user points to) is the `producer` of its config class (`syncvp.config.sources`), where the
config layer reads it for the `pipeline` fan-out without importing this package.

`prepare` (`syncvp.data.prepare`), the pseudo-depth stage (`raw_videos` below) and the flows ask
this table, so adding a kind is: a config class in the `Source` union, a module here, and one
line in `SOURCES`.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from syncvp.data.raw import RawVideo
from syncvp.data.sources import era5, image_sequence, synthetic_era5, synthetic_video, synthia, video

SOURCES: dict[str, ModuleType] = {
    "synthetic_video": synthetic_video,
    "synthetic_era5": synthetic_era5,
    "era5": era5,
    "synthia": synthia,
    "image_sequence": image_sequence,
    "video": video,
}


def source_kind(name: str, config) -> ModuleType:
    """The module of dataset `name`'s source kind."""
    kind = config.source.kind
    if kind not in SOURCES:
        raise ValueError(f"dataset {name!r}: source kind {kind!r} has no module in syncvp.data.sources "
                         f"(known: {sorted(SOURCES)})")
    return SOURCES[kind]


def raw_videos(name: str, config, raw_dir: Path) -> list[RawVideo]:
    """Every raw RGB video of a dataset, in split and then video order."""
    listing = source_kind(name, config).raw_videos
    if listing is None:
        known = sorted(k for k, m in SOURCES.items() if m.raw_videos is not None)
        raise ValueError(f"dataset {name!r}: source kind {config.source.kind!r} has no raw RGB videos (known: {known})")
    return listing(name, config, raw_dir)
