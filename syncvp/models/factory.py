"""Build the diffusion networks from the `unet` and `joint` params sections and the latent
geometries of the autoencoders (the only interface with them: a `TriplaneShape` each)."""

from __future__ import annotations

from typing import Mapping

from syncvp.config.diffusion import JointConfig, UNetConfig
from syncvp.models.joint_unet import JointUNet
from syncvp.models.triplane import TriplaneShape
from syncvp.models.unet import TriplaneUNet


def build_unet(cfg: UNetConfig, future: TriplaneShape, context: TriplaneShape | None) -> TriplaneUNet:
    """The stage-1 triplane UNet for a future latent `future`, conditioned on `context`."""
    return TriplaneUNet(shape=future, context=context, model_channels=cfg.model_channels,
                        channel_mult=cfg.channel_mult, num_res_blocks=cfg.num_res_blocks,
                        attention_resolutions=cfg.attention_resolutions, num_heads=cfg.num_heads,
                        norm_groups=cfg.norm_groups, dropout=cfg.dropout, condition_layout=cfg.condition_layout)


def build_joint_unet(unet: UNetConfig, joint: JointConfig,
                     shapes: Mapping[str, tuple[TriplaneShape, TriplaneShape | None]]) -> JointUNet:
    """The joint model over the modalities of `shapes` ({m: (future, context)}, in order).

    With `joint.shared_weights` every modality must have the same geometries (one UNet serves all).
    """
    names = list(shapes)
    if joint.shared_weights:
        distinct = {shapes[m] for m in names}
        if len(distinct) != 1:
            raise ValueError(f"joint.shared_weights needs one latent geometry for all modalities, got "
                             f"{ {m: shapes[m] for m in names} }")
        branches = build_unet(unet, *shapes[names[0]])
    else:
        branches = {m: build_unet(unet, *shapes[m]) for m in names}
    levels = len(unet.channel_mult)
    if joint.deep_levels > levels:
        raise ValueError(f"joint.deep_levels {joint.deep_levels} exceeds the {levels} levels of unet.channel_mult")
    for width in unet.widths:
        if width % joint.num_heads:
            raise ValueError(f"joint.num_heads {joint.num_heads} does not divide the level width {width}")
    return JointUNet(branches, modalities=names, cross_attention=joint.cross_attention, deep_levels=joint.deep_levels,
                     split_planes=joint.split_planes, normalize=joint.normalize, num_heads=joint.num_heads,
                     norm_groups=unet.norm_groups, stca_layout=joint.stca_layout,
                     locality=joint.locality, cross_inputs=joint.cross_inputs)
