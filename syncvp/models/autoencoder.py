"""The projected (triplane) video autoencoder of PVDM / SyncVP (docs/method.md §2).

encode: video [B, C, T, H, W] in [-1, 1]
  -> P x P patches, linear embedding -> [B, T, H', W', d]           (H' = H/P, W' = W/P)
  -> space-time transformer (divided attention, rotary)
  -> three axis projections, each a small transformer over one axis with a learnable token:
       xy [B, d, H', W'] (over T), yt [B, d, T, W'] (over H'), xt [B, d, T, H'] (over W')
  -> per-plane linear d -> C', tanh -> latent [B, C', L], L = H'W' + T W' + T H' ([xy | yt | xt])
decode: latent -> per-plane linear C' -> d -> broadcast sum V[t, i, j] = xy[i, j] + yt[t, j] + xt[t, i]
  -> space-time transformer -> per-frame ConvTranspose2d(d -> C, P, stride P) -> 2 sigmoid - 1.

Only space is compressed; time is not. Plane geometry lives in `TriplaneShape` (no slicing here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from syncvp.config.autoencoder import AutoencoderConfig
from syncvp.io.atomic import atomic_path
from syncvp.io.model_file import ModelFileError, one_line, read_torch_file, rerun_hint
from syncvp.models.transformer import AxisTransformer, SpaceTimeTransformer
from syncvp.models.triplane import TriplaneShape

PLANES = ("xy", "yt", "xt")
FORMAT = "syncvp-autoencoder"


@dataclass(frozen=True, kw_only=True)
class AutoencoderSpec:
    """Everything that fixes an autoencoder's architecture (stored in its checkpoint): the
    `autoencoder` params section and the sizes of the clips it codes.

    Attributes:
        channels: image channels of the modality (1 or 3).
        frames: clip length T.
        resolution: (H, W) in pixels.
        config: the architecture (`syncvp.config.AutoencoderConfig`).
    """

    channels: int
    frames: int
    resolution: tuple[int, int]
    config: AutoencoderConfig

    @classmethod
    def from_config(cls, config: AutoencoderConfig, *, channels: int, frames: int,
                    resolution: tuple[int, int]) -> "AutoencoderSpec":
        """Combine an `AutoencoderConfig` with the data-dependent sizes."""
        return cls(channels=channels, frames=frames, resolution=tuple(resolution), config=config)

    def __post_init__(self) -> None:
        if self.channels < 1 or self.frames < 1:
            raise ValueError(f"channels and frames must be >= 1, got {self.channels}, {self.frames}")
        self.latent_shape  # raises if the resolution is not divisible by the patch size

    @property
    def net_channels(self) -> int:
        """Channels the network itself sees (3 for a gray modality with `gray_to_rgb`)."""
        return 3 if self.config.gray_to_rgb and self.channels == 1 else self.channels

    @property
    def latent_shape(self) -> TriplaneShape:
        h, w = self.resolution
        return TriplaneShape.for_video(channels=self.config.latent_channels, height=h, width=w,
                                       frames=self.frames, patch=self.config.patch_size)

    def to_dict(self) -> dict:
        """The file's flat form: channels, frames, resolution, then the config's fields in order."""
        return {"channels": self.channels, "frames": self.frames, "resolution": list(self.resolution),
                **asdict(self.config)}

    @classmethod
    def from_dict(cls, data: dict) -> "AutoencoderSpec":
        """Read `to_dict`'s form (a missing or unknown key raises TypeError)."""
        sizes = ("channels", "frames", "resolution")
        missing = [k for k in sizes if k not in data]
        if missing:
            raise TypeError(f"the spec lacks {missing}")
        config = AutoencoderConfig(**{k: v for k, v in data.items() if k not in sizes})
        return cls(channels=data["channels"], frames=data["frames"], resolution=tuple(data["resolution"]),
                   config=config)


class AxisProjection(nn.Module):
    """Summarises each sequence along one axis into one vector with a learnable token.

    "clean": [token, x_1..x_n] + pos, read the token's output.
    "pvdm":  [x_1..x_n, token] + pos, read output 0 (the first element, PVDM's quirk).
    """

    def __init__(self, dim: int, length: int, depth: int, heads: int, head_dim: int, mlp: int,
                 mode: Literal["clean", "pvdm"]):
        super().__init__()
        self.mode = mode
        self.token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, length + 1, dim))
        self.transformer = AxisTransformer(dim, depth, heads, head_dim, mlp)

    def forward(self, x: Tensor) -> Tensor:
        """[N, S, D] -> [N, D]."""
        token = self.token.expand(x.shape[0], -1, -1).to(x.dtype)
        x = torch.cat([token, x] if self.mode == "clean" else [x, token], dim=1)
        x = x + self.pos[:, : x.shape[1]]
        return self.transformer(x)[:, 0]


class TriplaneAutoencoder(nn.Module):
    """Video <-> triplane latent. See the module docstring for the maths.

    Args:
        spec: the architecture. Use `spec.latent_shape` for the latent geometry.
    """

    def __init__(self, spec: AutoencoderSpec):
        super().__init__()
        self.spec = spec
        self.latent_shape = spec.latent_shape
        cfg = spec.config
        d, p, c = cfg.width, cfg.patch_size, spec.net_channels
        ls = self.latent_shape
        self.patch_embed = nn.Linear(c * p * p, d)
        self.encoder = SpaceTimeTransformer(d, cfg.depth, cfg.heads, cfg.head_dim, cfg.ff_mult)
        axis = dict(depth=cfg.axis_depth, heads=cfg.axis_heads, head_dim=cfg.axis_head_dim,
                    mlp=cfg.axis_mlp, mode=cfg.axis_token)
        self.project = nn.ModuleDict({
            "xy": AxisProjection(d, ls.frames, **axis),   # over time
            "yt": AxisProjection(d, ls.height, **axis),   # over height
            "xt": AxisProjection(d, ls.width, **axis),    # over width
        })
        self.to_latent = nn.ModuleDict({k: nn.Linear(d, cfg.latent_channels) for k in PLANES})
        self.from_latent = nn.ModuleDict({k: nn.Linear(cfg.latent_channels, d) for k in PLANES})
        self.decoder = SpaceTimeTransformer(d, cfg.depth, cfg.heads, cfg.head_dim, cfg.ff_mult)
        self.unpatchify = nn.ConvTranspose2d(d, c, kernel_size=p, stride=p)

    # ---------------------------------------------------------------------------------------

    def patchify(self, video: Tensor) -> Tensor:
        """[B, C, T, H, W] -> [B, T, H', W', P*P*C], values ordered (row in patch, column, channel)."""
        b, c, t, h, w = video.shape
        p = self.spec.config.patch_size
        x = video.reshape(b, c, t, h // p, p, w // p, p)
        return x.permute(0, 2, 3, 5, 4, 6, 1).reshape(b, t, h // p, w // p, p * p * c)

    def _check_video(self, video: Tensor) -> None:
        want = (self.spec.channels, self.spec.frames, *self.spec.resolution)
        if video.ndim != 5 or tuple(video.shape[1:]) != want:
            raise ValueError(f"expected a video [B, {', '.join(map(str, want))}], got {tuple(video.shape)}")

    def encode(self, video: Tensor) -> Tensor:
        """Video [B, C, T, H, W] in [-1, 1] -> latent [B, C', L] in (-1, 1)."""
        self._check_video(video)
        if self.spec.net_channels != self.spec.channels:
            video = video.expand(-1, self.spec.net_channels, -1, -1, -1)
        h = self.encoder(self.patch_embed(self.patchify(video)))        # [B, T, H', W', d]
        b, t, hh, ww, d = h.shape
        xy = self.project["xy"](h.permute(0, 2, 3, 1, 4).reshape(-1, t, d)).view(b, hh, ww, d)
        yt = self.project["yt"](h.permute(0, 1, 3, 2, 4).reshape(-1, hh, d)).view(b, t, ww, d)
        xt = self.project["xt"](h.reshape(-1, ww, d)).view(b, t, hh, d)
        planes = [torch.tanh(self.to_latent[k](v)).permute(0, 3, 1, 2) for k, v in zip(PLANES, (xy, yt, xt))]
        return self.latent_shape.merge(*planes)

    def decode(self, latent: Tensor) -> Tensor:
        """Latent [B, C', L] -> video [B, C, T, H, W] in (-1, 1)."""
        xy, yt, xt = (self.from_latent[k](v.permute(0, 2, 3, 1))
                      for k, v in zip(PLANES, self.latent_shape.split(latent)))
        # xy [B, H', W', d], yt [B, T, W', d], xt [B, T, H', d] -> V [B, T, H', W', d]
        volume = xy[:, None] + yt[:, :, None] + xt[:, :, :, None]
        h = self.decoder(volume)
        b, t, hh, ww, d = h.shape
        frames = self.unpatchify(h.reshape(b * t, hh, ww, d).permute(0, 3, 1, 2))   # [B*T, C, H, W]
        video = (2 * torch.sigmoid(frames) - 1).view(b, t, *frames.shape[1:]).transpose(1, 2)
        if self.spec.net_channels != self.spec.channels:
            video = video.mean(dim=1, keepdim=True)
        return video

    def forward(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """Video -> (reconstruction [B, C, T, H, W], latent [B, C', L])."""
        latent = self.encode(video)
        return self.decode(latent), latent


# --------------------------------------------------------------------------------------------
# Frozen checkpoints


def save_autoencoder(path: str | Path, model: TriplaneAutoencoder, meta: dict | None = None) -> Path:
    """Write a frozen autoencoder: {"format", "spec", "state_dict", "meta"} (atomic)."""
    payload = {"format": FORMAT, "version": 1, "spec": model.spec.to_dict(),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "meta": meta or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_autoencoder(path: str | Path, map_location: str | torch.device = "cpu") -> TriplaneAutoencoder:
    """Load a frozen autoencoder written by `save_autoencoder`, in eval mode with grads off.

    Raises:
        ModelFileError: the file is missing, not one `save_autoencoder` wrote (empty, truncated,
            foreign), or its weights do not fit its spec; the message names the file and the
            `dvc repro` that rewrites it.
    """
    payload = read_torch_file(path, FORMAT, keys=("spec", "state_dict"), remedy=rerun_hint(path),
                              map_location=map_location)
    try:
        model = TriplaneAutoencoder(AutoencoderSpec.from_dict(payload["spec"]))
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: the weights do not fit the saved spec ({one_line(exc)}); "
                             f"{rerun_hint(path)}") from None
    model.eval().requires_grad_(False)
    return model.to(map_location)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

