"""Typed, strictly loaded configuration: one frozen dataclass per `params.yaml` section.

Imports only the standard library and PyYAML (no torch), so params can be validated cheaply.
"""

from syncvp.config.autoencoder import AutoencoderConfig, GanConfig, TrainAutoencoderConfig
from syncvp.config.data import DatasetConfig, SplitCounts, SyntheticEra5Source, SyntheticVideoSource
from syncvp.config.diffusion import DiffusionConfig, JointConfig, SamplingConfig, UNetConfig
from syncvp.config.era5_source import Era5Processing, Era5Source, MonthSplits
from syncvp.config.layout import SPLITS, PathsConfig, parse_unit
from syncvp.config.loader import FieldError, ParamsError, require, to_plain
from syncvp.config.params import Params, load_params, params_from_dict, replace
from syncvp.config.pipeline import PipelineConfig
from syncvp.config.roles import ROLES, RolePair
from syncvp.config.runtime import RunConfig, WeightsConfig
from syncvp.config.sources import (
    ImageModality,
    ImageSequenceSource,
    NameSplits,
    SynthiaSource,
    VideoSegment,
    VideoSource,
    VideoSplits,
)
from syncvp.config.train_diffusion import EmaConfig, TrainJointConfig, TrainSingleConfig

__all__ = [
    "ROLES",
    "SPLITS",
    "AutoencoderConfig",
    "DatasetConfig",
    "DiffusionConfig",
    "Era5Processing",
    "Era5Source",
    "FieldError",
    "GanConfig",
    "ImageModality",
    "ImageSequenceSource",
    "JointConfig",
    "MonthSplits",
    "NameSplits",
    "Params",
    "ParamsError",
    "PathsConfig",
    "PipelineConfig",
    "RolePair",
    "RunConfig",
    "SamplingConfig",
    "SplitCounts",
    "SyntheticEra5Source",
    "SyntheticVideoSource",
    "SynthiaSource",
    "TrainAutoencoderConfig",
    "TrainJointConfig",
    "TrainSingleConfig",
    "EmaConfig",
    "UNetConfig",
    "VideoSegment",
    "VideoSource",
    "VideoSplits",
    "WeightsConfig",
    "load_params",
    "params_from_dict",
    "parse_unit",
    "replace",
    "require",
    "to_plain",
]
