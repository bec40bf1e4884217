"""Load the official PVDM / SyncVP checkpoints: autoencoders (`ae_{rgb,depth}_{8f,2f}_*.pth`) and
the joint model (`syncvp_*.pth`). One direction only: official names -> ours.

Their state dicts use PVDM's module names (`encoder.layers.<i>.<0|1|2>.fn...`, `xy_quant_attn`,
`pre_xy` 1x1 convs, `to_pixel.1`); `convert_official` renames them to `TriplaneAutoencoder`'s and
reshapes the 1x1 convolutions into linear layers. Rotary tables and the unused `coords` buffer
are recomputed, not loaded. Run them with `axis_token="pvdm"` (and `gray_to_rgb=True` for the
3-channel depth autoencoders): the spec is not stored in the official files.

The joint model's keys (`diff_rgb.diffusion_model.*`, `diff_depth.diffusion_model.*`,
`cross_attns.<i>.*`) map onto `JointUNet` by `official_joint_key`; run it with
`unet.condition_layout: official` and `joint.stca_layout: official`. `fit_official` checks a
whole file against the configured model (every key used, every weight filled, shapes equal)
before anything is loaded.
"""

from __future__ import annotations

import re
from typing import Mapping

from torch import Tensor, nn

from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder
from syncvp.models.joint_unet import JointUNet
from syncvp.models.unet import TriplaneUNet

_DROPPED = re.compile(r"^(coords|(en|de)coder\.(frame_rot_emb\.inv_freqs|image_rot_emb\.scales))$")
_SPACE_TIME = {"0": "time_attn", "1": "space_attn", "2": "ff"}
_INNER = {"norm": "norm", "fn.to_qkv": "qkv", "fn.to_out.0": "out", "fn.net.0": "up", "fn.net.3": "down"}


def official_key(key: str) -> str | None:
    """The `TriplaneAutoencoder` name of an official key (None for recomputed buffers)."""
    if _DROPPED.match(key):
        return None
    if m := re.fullmatch(r"(encoder|decoder)\.layers\.(\d+)\.([012])\.(.+)\.(weight|bias)", key):
        part, i, sub, inner, param = m.groups()
        return f"{part}.blocks.{i}.{_SPACE_TIME[sub]}.{_INNER[inner]}.{param}"
    if m := re.fullmatch(r"(xy|yt|xt)_quant_attn\.layers\.(\d+)\.([01])\.(.+)\.(weight|bias)", key):
        plane, i, sub, inner, param = m.groups()
        return f"project.{plane}.transformer.{'attn' if sub == '0' else 'ff'}.{i}.{_INNER[inner]}.{param}"
    if m := re.fullmatch(r"(xy|yt|xt)_(token|pos_embedding)", key):
        return f"project.{m[1]}.{'token' if m[2] == 'token' else 'pos'}"
    if m := re.fullmatch(r"(pre|post)_(xy|yt|xt)\.(weight|bias)", key):
        return f"{'to_latent' if m[1] == 'pre' else 'from_latent'}.{m[2]}.{m[3]}"
    fixed = {
        "encoder.to_patch_embedding.weight": "patch_embed.weight",
        "encoder.to_patch_embedding.bias": "patch_embed.bias",
        "to_pixel.1.weight": "unpatchify.weight",
        "to_pixel.1.bias": "unpatchify.bias",
    }
    if key in fixed:
        return fixed[key]
    raise KeyError(f"unexpected key in an official autoencoder checkpoint: {key}")


def convert_official(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Official state dict -> `TriplaneAutoencoder` state dict (1x1 convs become linear weights)."""
    out = {}
    for key, value in state.items():
        name = official_key(key)
        if name is None:
            continue
        if name.startswith(("to_latent.", "from_latent.")) and name.endswith(".weight"):
            value = value.flatten(1)  # [out, in, 1, 1] -> [out, in]
        out[name] = value
    return out


def load_official(
    state: Mapping[str, Tensor], spec: AutoencoderSpec, source: str = "<official autoencoder>"
) -> TriplaneAutoencoder:
    """A `TriplaneAutoencoder` holding an official checkpoint's weights (strict, see `fit_official`)."""
    if spec.config.axis_token != "pvdm":
        raise ValueError("official checkpoints read the axis projections PVDM's way: use axis_token='pvdm'")
    model = TriplaneAutoencoder(spec)
    model.load_state_dict(fit_official(state, model, official_key, source), strict=True)
    return model


# --------------------------------------------------------------------------------------------
# the joint model (`syncvp_<dataset>.pth`: MultiModalUnet inside MMDiffusionWrapper)

_BRANCH = re.compile(r"diff_(rgb|depth)\.diffusion_model\.(.+)")
_RES = {
    "in_layers.0": "norm_in",
    "in_layers.2": "conv_in",
    "emb_layers.1": "emb_proj",
    "out_layers.0": "norm_out",
    "out_layers.3": "conv_out",
    "skip_connection": "skip",
    "norm": "norm",
    "qkv": "qkv",
    "proj_out": "proj_out",
}
_STCA = {
    "norm_1": ("norm", 0),
    "norm_2": ("norm", 1),
    "cross_attn.W_q_x": ("query", 0),
    "cross_attn.W_q_y": ("query", 1),
    "cross_attn.W_v_x": ("value", 0),
    "cross_attn.W_v_y": ("value", 1),
    "cross_attn.W_x_out": ("out", 0),
    "cross_attn.W_y_out": ("out", 1),
}


def _unet_key(key: str, unet: TriplaneUNet) -> str | None:
    """The `TriplaneUNet` name of a key of the official UNetModel (None for its `zeros` buffer).
    The cross-plane attentions (`input_attns.<i>`, `mid_attn`, `output_attns.<j>`) are the last
    layer of our block i / the middle block / output block j."""
    if key == "zeros":
        return None
    if m := re.fullmatch(r"time_embed\.([02])\.(weight|bias)", key):
        return f"time_embed.mlp.{m[1]}.{m[2]}"
    if m := re.fullmatch(r"input_blocks\.0\.0\.(weight|bias)", key):
        return f"input_blocks.0.layers.0.conv.{m[1]}"
    if m := re.fullmatch(r"(input_blocks|output_blocks)\.(\d+)\.(\d+)\.(.+)\.(weight|bias)", key):
        part, i, k, inner, param = m.groups()
        if inner in _RES:
            return f"{part}.{i}.layers.{k}.{_RES[inner]}.{param}"
    if m := re.fullmatch(r"middle_block\.(\d+)\.(.+)\.(weight|bias)", key):
        if m[2] in _RES:
            return f"middle_block.layers.{m[1]}.{_RES[m[2]]}.{m[3]}"
    if m := re.fullmatch(r"(input|output)_attns\.(\d+)\.(norm|qkv|proj_out)\.(weight|bias)", key):
        blocks = unet.input_blocks if m[1] == "input" else unet.output_blocks
        if int(m[2]) < len(blocks):
            return f"{m[1]}_blocks.{m[2]}.layers.{len(blocks[int(m[2])].layers) - 1}.{m[3]}.{m[4]}"
    if m := re.fullmatch(r"mid_attn\.(norm|qkv|proj_out)\.(weight|bias)", key):
        return f"middle_block.layers.{len(unet.middle_block.layers) - 1}.{m[1]}.{m[2]}"
    if m := re.fullmatch(r"out\.([02])\.(weight|bias)", key):
        return f"head.{'norm' if m[1] == '0' else 'conv'}.{m[2]}"
    raise KeyError(key)


def official_joint_key(key: str, model: JointUNet) -> str | None:
    """The `JointUNet` name of a key of the official joint checkpoint (None for recomputed buffers).

    `diff_rgb` is the branch of the first modality, `diff_depth` of the second; the official
    `cross_attns.<i>` list has no slot after the stem, so it is our `cross.<i + 1>` (x = the first
    modality, y = the second). A leading `diffusion_model.` (the wrapper) is accepted.
    Raises KeyError for a key that has no place in `model`.
    """
    if model.shared or len(model.modalities) != 2:
        raise ValueError(
            "the official joint model has two branches with separate weights (joint.shared_weights: "
            "false, two modalities)"
        )
    key = key.removeprefix("diffusion_model.")
    if m := _BRANCH.fullmatch(key):
        modality = model.modalities[0 if m[1] == "rgb" else 1]
        name = _unet_key(m[2], model.branch(modality))
        return None if name is None else f"branches.{modality}.{name}"
    if m := re.fullmatch(r"cross_attns\.(\d+)\.(.+)\.(weight|bias)", key):
        if m[2] in _STCA:
            what, which = _STCA[m[2]]
            return f"cross.{int(m[1]) + 1}.{what}.{model.modalities[which]}.{m[3]}"
    raise KeyError(key)


class OfficialCheckpointError(ValueError):
    """An official checkpoint does not fit the configured architecture (the message names the file,
    the key and the expected shape)."""


def fit_official(state: Mapping[str, Tensor], model: nn.Module, rename, source: str) -> dict[str, Tensor]:
    """`model`'s state dict filled from an official one, checked strictly before anything is loaded:
    every official key must have a place (`rename(key)`: our name, None for a recomputed buffer, or
    KeyError), every key of ours must be filled, and every shape must match (1x1 convolutions of
    the autoencoder's plane projections are flattened to linear weights first).

    Raises:
        OfficialCheckpointError: naming `source`, the first offending key and the expected shape.
    """
    own = model.state_dict()
    out, origin = {}, {}
    for key, value in state.items():
        try:
            name = rename(key)
        except KeyError:
            name = ""
        if name is None:
            continue
        if name not in own:
            raise OfficialCheckpointError(
                f"{source}: key {key!r} has no place in the configured model (an "
                f"unexpected key: the file does not match the preset's architecture)"
            )
        if value.ndim == 4 and own[name].ndim == 2 and value.shape[2:] == (1, 1):
            value = value.flatten(1)  # the autoencoder's 1x1 plane projections -> linear weights
        if tuple(value.shape) != tuple(own[name].shape):
            raise OfficialCheckpointError(
                f"{source}: key {key!r} has shape {tuple(value.shape)}, the configured "
                f"model expects {tuple(own[name].shape)} (for {name}); check the preset's "
                f"sizes against the released ones"
            )
        out[name], origin[name] = value, key
    missing = [k for k in own if k not in out]
    if missing:
        more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
        raise OfficialCheckpointError(
            f"{source}: no key fills {missing[0]}{more}, expected shape "
            f"{tuple(own[missing[0]].shape)} (the file lacks weights the preset's "
            f"architecture has)"
        )
    return out


def load_official_joint(state: Mapping[str, Tensor], model: JointUNet, source: str = "<official joint>") -> JointUNet:
    """Load an official joint checkpoint's weights into `model` (strict, see `fit_official`)."""
    model.load_state_dict(fit_official(state, model, lambda k: official_joint_key(k, model), source), strict=True)
    return model
