"""Triplane geometry: the one place that knows how a flattened latent splits into planes.

A video of T frames, H x W pixels, patch size P has a latent of C' channels and length
L = H'W' + T W' + T H' (H' = H/P, W' = W/P), concatenated in the order [xy | yt | xt]:

- xy [B, C', H', W']: the spatial plane (time pooled away);
- yt [B, C', T, W']: pooled over height (rows = frames, columns = width);
- xt [B, C', T, H']: pooled over width (rows = frames, columns = height).

(The names follow PVDM's code; docs/method.md §7.13 explains the confusion.) Nothing else in the
project slices a latent by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class TriplaneShape:
    """Latent geometry (C', H', W', T)."""

    channels: int
    height: int
    width: int
    frames: int

    def __post_init__(self) -> None:
        if min(self.channels, self.height, self.width, self.frames) < 1:
            raise ValueError(f"every size of a TriplaneShape must be >= 1, got {self}")

    @classmethod
    def for_video(cls, *, channels: int, height: int, width: int, frames: int, patch: int) -> "TriplaneShape":
        """The latent of a [frames, height, width] video with patch size `patch`."""
        if height % patch or width % patch:
            raise ValueError(f"resolution {height}x{width} is not divisible by the patch size {patch}")
        return cls(channels=channels, height=height // patch, width=width // patch, frames=frames)

    @property
    def plane_shapes(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(rows, cols) of the xy, yt and xt planes."""
        return (self.height, self.width), (self.frames, self.width), (self.frames, self.height)

    @property
    def plane_lengths(self) -> tuple[int, int, int]:
        return tuple(r * c for r, c in self.plane_shapes)

    @property
    def length(self) -> int:
        """L = H'W' + T W' + T H'."""
        return sum(self.plane_lengths)

    def split(self, latent: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """[B, C, L] -> (xy [B, C, H', W'], yt [B, C, T, W'], xt [B, C, T, H']). C may differ from C'."""
        if latent.shape[-1] != self.length:
            raise ValueError(f"latent length {latent.shape[-1]} does not match {self} (L = {self.length})")
        parts = torch.split(latent, self.plane_lengths, dim=-1)
        return tuple(p.reshape(*latent.shape[:-1], r, c) for p, (r, c) in zip(parts, self.plane_shapes))

    def merge(self, xy: Tensor, yt: Tensor, xt: Tensor) -> Tensor:
        """The inverse of `split`: planes -> [B, C, L] in the order [xy | yt | xt]."""
        for plane, (r, c), name in zip((xy, yt, xt), self.plane_shapes, ("xy", "yt", "xt")):
            if plane.shape[-2:] != (r, c):
                raise ValueError(f"{name} plane has shape {tuple(plane.shape[-2:])}, expected {(r, c)} for {self}")
        return torch.cat([p.flatten(-2) for p in (xy, yt, xt)], dim=-1)

    def with_channels(self, channels: int) -> "TriplaneShape":
        return TriplaneShape(channels=channels, height=self.height, width=self.width, frames=self.frames)


def align_condition(latent: Tensor, source: TriplaneShape, target: TriplaneShape,
                    mode: Literal["per_plane", "official"] = "per_plane") -> Tensor:
    """Lay a conditioning latent (e.g. the 2-frame context autoencoder's) out on the target
    latent's geometry, so it can be concatenated to the target along channels.

    Args:
        latent: [B, C, L_source].
        source, target: their geometries (same H', W'; frames may differ).
        mode: "per_plane" (our fix of docs/method.md §7.1): each context plane lands on the matching
            target plane; the time rows of yt/xt fill the first rows (zeros after), or the last
            `target.frames` rows are kept when the context is longer. "official": zero-pad the
            flattened latent at the end (the released code; it misplaces the xt plane), kept
            only to load official checkpoints.

    Returns:
        [B, C, L_target].
    """
    if mode == "official":
        if latent.shape[-1] > target.length:
            raise ValueError(f"official layout cannot shrink a latent of length {latent.shape[-1]} to {target.length}")
        return F.pad(latent, (0, target.length - latent.shape[-1]))
    if (source.height, source.width) != (target.height, target.width):
        raise ValueError(f"conditioning grid {source.height}x{source.width} differs from target {target.height}x{target.width}")
    xy, yt, xt = source.split(latent)
    rows = target.frames
    if source.frames >= rows:
        yt, xt = yt[..., -rows:, :], xt[..., -rows:, :]
    else:
        pad = (0, 0, 0, rows - source.frames)
        yt, xt = F.pad(yt, pad), F.pad(xt, pad)
    return target.merge(xy, yt, xt)
