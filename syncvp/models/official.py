"""Load the official PVDM / SyncVP autoencoder checkpoints (`ae_{rgb,depth}_{8f,2f}_*.pth`).

Their state dicts use PVDM's module names (`encoder.layers.<i>.<0|1|2>.fn...`, `xy_quant_attn`,
`pre_xy` 1x1 convs, `to_pixel.1`); `convert_official` renames them to `TriplaneAutoencoder`'s and
reshapes the 1x1 convolutions into linear layers. Rotary tables and the unused `coords` buffer
are recomputed, not loaded. Run them with `axis_token="pvdm"` (and `gray_to_rgb=True` for the
3-channel depth autoencoders): the spec is not stored in the official files.
"""

from __future__ import annotations

import re
from typing import Mapping

from torch import Tensor

from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder

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
    fixed = {"encoder.to_patch_embedding.weight": "patch_embed.weight", "encoder.to_patch_embedding.bias": "patch_embed.bias",
             "to_pixel.1.weight": "unpatchify.weight", "to_pixel.1.bias": "unpatchify.bias"}
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
            value = value.flatten(1)   # [out, in, 1, 1] -> [out, in]
        out[name] = value
    return out


def load_official(state: Mapping[str, Tensor], spec: AutoencoderSpec) -> TriplaneAutoencoder:
    """A `TriplaneAutoencoder` holding an official checkpoint's weights (strict: every key used)."""
    if spec.config.axis_token != "pvdm":
        raise ValueError("official checkpoints read the axis projections PVDM's way: use axis_token='pvdm'")
    model = TriplaneAutoencoder(spec)
    model.load_state_dict(convert_official(state), strict=True)
    return model

