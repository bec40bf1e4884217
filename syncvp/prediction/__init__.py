"""Prediction on top of the trained networks: autoregressive multi-modal rollout."""

from syncvp.prediction.load import load_predictor
from syncvp.prediction.rollout import Predictor, quantize_uint8

__all__ = ["Predictor", "load_predictor", "quantize_uint8"]
