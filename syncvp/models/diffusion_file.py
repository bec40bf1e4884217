"""Frozen diffusion-model files: a stage-1 UNet or a stage-2 joint model, with what rebuilds it.

A file is a dict read with `torch.load(weights_only=True)`:

    {"format": "syncvp-diffusion", "version": 1,
     "kind": "single" | "joint",
     "modalities": [m, ...],                    # one for "single"
     "shapes": {m: {"future": {...}, "context": {...} | None}},   # TriplaneShape fields
     "unet": {...}, "joint": {...} | None,      # the `unet` / `joint` params sections (plain data)
     "diffusion": {...},                        # the `diffusion` section: schedule and parameterisation
     "state_dict": {...},                       # the weights to sample with (the EMA copy by default)
     "meta": {...}}                             # plain provenance: step, which weights, data digest...

Only plain containers and tensors appear, so the configs are rebuilt through the strict params
loader (`syncvp.config`) and the network through `syncvp.models.factory`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from syncvp.config.diffusion import DiffusionConfig, JointConfig, UNetConfig
from syncvp.config.loader import ParamsError, build, to_plain
from syncvp.io.atomic import atomic_path
from syncvp.io.model_file import ModelFileError, one_line, read_torch_file, rerun_hint
from syncvp.models.factory import build_joint_unet, build_unet
from syncvp.models.joint_unet import JointUNet
from syncvp.models.triplane import TriplaneShape
from syncvp.models.unet import TriplaneUNet

FORMAT, VERSION = "syncvp-diffusion", 1
KEYS = ("version", "kind", "modalities", "shapes", "unet", "joint", "diffusion", "state_dict", "meta")
Shapes = Mapping[str, tuple[TriplaneShape, TriplaneShape | None]]


def _shape_dict(shape: TriplaneShape | None) -> dict | None:
    return None if shape is None else asdict(shape)


def _shape(data: dict | None) -> TriplaneShape | None:
    return None if data is None else TriplaneShape(**data)


def save_diffusion_model(path: str | Path, model: TriplaneUNet | JointUNet, *, shapes: Shapes, unet: UNetConfig,
                         diffusion: DiffusionConfig, joint: JointConfig | None = None,
                         meta: dict | None = None) -> Path:
    """Write `model`'s weights (pass the EMA copy to export EMA weights) with its configuration.

    Args:
        shapes: {modality: (future latent, context latent or None)}; one entry for a stage-1 UNet,
            every modality in branch order for a joint model.
        joint: the `joint` section (required for a `JointUNet`, None for a `TriplaneUNet`).
    """
    kind = "joint" if isinstance(model, JointUNet) else "single"
    if (kind == "joint") != (joint is not None):
        raise ValueError(f"a {kind} model {'needs' if kind == 'joint' else 'takes no'} `joint` configuration")
    if kind == "single" and len(shapes) != 1:
        raise ValueError(f"a stage-1 UNet has one modality, got shapes for {list(shapes)}")
    if kind == "joint" and tuple(shapes) != model.modalities:
        raise ValueError(f"shapes are given for {list(shapes)}, the joint model has {list(model.modalities)}")
    payload = {"format": FORMAT, "version": VERSION, "kind": kind, "modalities": list(shapes),
               "shapes": {m: {"future": _shape_dict(f), "context": _shape_dict(c)} for m, (f, c) in shapes.items()},
               "unet": to_plain(unet), "joint": None if joint is None else to_plain(joint),
               "diffusion": to_plain(diffusion),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


class DiffusionModelFile:
    """A loaded diffusion-model file: its configuration, and `build()` for the network."""

    def __init__(self, path: str | Path, payload: dict):
        self.path, self.payload = Path(path), payload
        source = f"{path} (saved configuration)"
        try:
            self.unet: UNetConfig = build(UNetConfig, payload["unet"], "unet", source)
            # files written before `context_encoder` existed all used the context autoencoder
            # (and trained with uniform timesteps before `high_noise_share` existed)
            diffusion = {"context_encoder": "context", "context_motion": False, "context_extrapolation": "hold", "extrapolate_modalities": None, "extrapolation_blur": 0.0, "residual": False, "normalize": False, "min_snr_gamma": None,
                         "high_noise_share": 0.0, "high_noise_from": 0, **payload["diffusion"]}
            self.diffusion: DiffusionConfig = build(DiffusionConfig, diffusion, "diffusion", source)
            # joint files written before `cross_inputs` existed had none
            self.joint: JointConfig | None = (None if payload["joint"] is None
                                              else build(JointConfig, {"cross_inputs": False, **payload["joint"]},
                                                         "joint", source))
        except ParamsError as exc:
            raise ModelFileError(str(exc)) from None
        self.kind: str = payload["kind"]
        self.modalities: tuple[str, ...] = tuple(payload["modalities"])
        self.shapes: dict[str, tuple[TriplaneShape, TriplaneShape | None]] = {
            m: (_shape(s["future"]), _shape(s["context"])) for m, s in payload["shapes"].items()}
        self.meta: dict[str, Any] = payload["meta"]

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.payload["state_dict"]

    def build(self, device: str | torch.device = "cpu") -> nn.Module:
        """The network with the saved weights, strictly loaded, in eval mode without gradients."""
        if self.kind == "joint":
            model: nn.Module = build_joint_unet(self.unet, self.joint, self.shapes)
        else:
            (modality,) = self.modalities
            model = build_unet(self.unet, *self.shapes[modality])
        try:
            model.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(f"{self.path}: the weights do not fit the saved configuration ({one_line(exc)}); "
                                 f"{rerun_hint(self.path)}") from None
        return model.eval().requires_grad_(False).to(device)


def load_diffusion_model(path: str | Path, *, kind: str | None = None) -> DiffusionModelFile:
    """Read a file written by `save_diffusion_model` (`weights_only=True`).

    Args:
        kind: "single" or "joint" to insist on one kind (a clear error otherwise).
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path} does not exist: train it first (`dvc repro`), or point to a trained model")
    payload = read_torch_file(path, FORMAT, keys=KEYS, remedy=rerun_hint(path))
    if payload["version"] != VERSION:
        raise ModelFileError(f"{path}: version {payload['version']} (this code reads {VERSION}); {rerun_hint(path)}")
    if kind is not None and payload["kind"] != kind:
        raise ModelFileError(f"{path} holds a {payload['kind']} model, a {kind} model is needed here")
    return DiffusionModelFile(path, payload)


def stage1_branch_states(files: Mapping[str, DiffusionModelFile]) -> dict[str, dict[str, torch.Tensor]]:
    """The stage-1 weights {modality: state_dict} for `JointUNet.load_branches`, checking that each
    file is a stage-1 model of that modality."""
    out = {}
    for modality, f in files.items():
        if f.kind != "single" or f.modalities != (modality,):
            raise ModelFileError(f"{f.path} is a {f.kind} model of {list(f.modalities)}, not a stage-1 model of "
                                 f"{modality!r}")
        out[modality] = f.state_dict
    return out
