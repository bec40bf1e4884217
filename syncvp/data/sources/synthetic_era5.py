"""The `synthetic_era5` source kind: months that the `synthesize` stage writes exactly as a CDS
download (`syncvp.data.synthetic_era5`), so they are read like the `era5` kind's."""

from __future__ import annotations

from syncvp.data.sources.era5 import dataset_constants, prepare_split, raw_videos

__all__ = ["dataset_constants", "prepare_split", "raw_videos"]
