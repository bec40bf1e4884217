"""The autoencoder's training objective as `Update`s for the generic loop (docs/method.md §2.4-2.5).

Reconstruction phase: one update, L = w_pix mean|x - x^| + w_p LPIPS(x_f, x^_f), with x_f one
random frame per clip. GAN fine-tune: the autoencoder update gains, from `disc_start` on,
-w_g (mean D2(x^_f) + mean D3(x^)) + w_fm (FM_2D + FM_3D); then a discriminator update minimises
hinge(D2) + hinge(D3) on the same clips, reconstructed again under no_grad, with each
discriminator's gradient norm clipped. Before `disc_start` the discriminators are not run at all.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping

import torch
from torch import Tensor, nn

from syncvp.models.autoencoder import TriplaneAutoencoder
from syncvp.models.discriminator import PatchDiscriminator
from syncvp.training import losses
from syncvp.training.loop import Update
from syncvp.training.perceptual import perceptual_distance


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Build graph pieces through `modules` without making their parameters require grad."""
    flags = [[p.requires_grad for p in m.parameters()] for m in modules]
    for m in modules:
        m.requires_grad_(False)
    try:
        yield
    finally:
        for m, fs in zip(modules, flags):
            for p, f in zip(m.parameters(), fs):
                p.requires_grad_(f)


def build_discriminators(channels: int, ndf: int, layers: int) -> nn.ModuleDict:
    """The 2-D (one frame) and 3-D (whole clip) PatchGANs."""
    return nn.ModuleDict(
        {
            "image": PatchDiscriminator(channels, ndf, layers, dims=2),
            "video": PatchDiscriminator(channels, ndf, layers, dims=3),
        }
    )


class AutoencoderObjective:
    """Losses of one autoencoder on batches `{modality: [B, C, T, H, W], ...}`.

    Args:
        model: the autoencoder being trained.
        modality: the batch key it reconstructs.
        frame_generator: draws the random frame per clip (CPU generator; checkpointed).
        pixel_weight, perceptual_weight: loss weights.
        perceptual: a frozen LPIPS network, or None (term off).
        discriminators: `build_discriminators(...)` for the GAN fine-tune, or None.
        disc_start: step (of the fine-tune) from which the GAN terms and the discriminator update run.
        gan_weight, feature_weight: weights of the generator hinge and feature-matching terms.
        max_disc_grad_norm: per-discriminator gradient clip.
    """

    def __init__(
        self,
        model: TriplaneAutoencoder,
        modality: str,
        *,
        frame_generator: torch.Generator,
        pixel_weight: float,
        perceptual_weight: float,
        perceptual: nn.Module | None = None,
        discriminators: nn.ModuleDict | None = None,
        disc_start: int = 0,
        gan_weight: float = 1.0,
        feature_weight: float = 4.0,
        max_disc_grad_norm: float | None = 1.0,
    ):
        self.model, self.modality, self.frame_generator = model, modality, frame_generator
        self.pixel_weight, self.perceptual_weight = pixel_weight, perceptual_weight
        self.perceptual = perceptual if perceptual_weight > 0 else None
        self.discriminators, self.disc_start = discriminators, disc_start
        self.gan_weight, self.feature_weight, self.max_disc_grad_norm = gan_weight, feature_weight, max_disc_grad_norm

    def gan_active(self, step: int) -> bool:
        return self.discriminators is not None and step >= self.disc_start

    def _frames(self, video: Tensor) -> Tensor:
        return torch.randint(0, video.shape[2], (video.shape[0],), generator=self.frame_generator)

    def autoencoder_loss(self, batch: Mapping[str, Tensor], step: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Generator-side loss; metrics: l1 (and lpips, gan, fm when on)."""
        x = batch[self.modality]
        recon, _ = self.model(x)
        l1 = (x - recon.float()).abs().mean()
        loss, metrics = self.pixel_weight * l1, {"l1": l1.detach()}
        gan = self.gan_active(step)
        if self.perceptual is None and not gan:
            return loss, metrics
        index = self._frames(x)
        x_f, r_f = losses.pick_frames(x, index), losses.pick_frames(recon, index)
        if self.perceptual is not None:
            lp = perceptual_distance(self.perceptual, x_f, r_f.float()).mean()
            loss, metrics["lpips"] = loss + self.perceptual_weight * lp, lp.detach()
        if gan:
            g, fm = self._adversarial(x, recon, x_f, r_f)
            loss = loss + self.gan_weight * g + self.feature_weight * fm
            metrics.update(gan=g.detach(), fm=fm.detach())
        return loss, metrics

    def _adversarial(self, x: Tensor, recon: Tensor, x_f: Tensor, r_f: Tensor) -> tuple[Tensor, Tensor]:
        d2, d3 = self.discriminators["image"], self.discriminators["video"]
        with frozen(d2, d3):
            fake2, feats_fake2 = d2(r_f)
            fake3, feats_fake3 = d3(recon)
            with torch.no_grad():
                _, feats_real2 = d2(x_f)
                _, feats_real3 = d3(x)
        g = losses.hinge_generator(fake2) + losses.hinge_generator(fake3)
        fm = losses.feature_matching(feats_fake2, feats_real2) + losses.feature_matching(feats_fake3, feats_real3)
        return g, fm

    def discriminator_loss(self, batch: Mapping[str, Tensor], step: int) -> tuple[Tensor, dict[str, Tensor]]:
        """hinge(D2) on one random frame per clip + hinge(D3) on the clip."""
        x = batch[self.modality]
        with torch.no_grad():
            recon = self.model(x)[0]
        index = self._frames(x)
        d2, d3 = self.discriminators["image"], self.discriminators["video"]
        h2 = losses.hinge_discriminator(d2(losses.pick_frames(x, index))[0], d2(losses.pick_frames(recon, index))[0])
        h3 = losses.hinge_discriminator(d3(x)[0], d3(recon)[0])
        return h2 + h3, {"hinge_image": h2.detach(), "hinge_video": h3.detach()}

    def updates(self) -> list[Update]:
        """["autoencoder"] or ["autoencoder", "discriminator"] (optimizer names in the TrainState)."""
        out = [Update("autoencoder", self.autoencoder_loss, clip_groups=[list(self.model.parameters())])]
        if self.discriminators is not None:
            groups = [list(d.parameters()) for d in self.discriminators.values()]
            out.append(
                Update(
                    "discriminator",
                    self.discriminator_loss,
                    clip_groups=groups,
                    max_grad_norm=self.max_disc_grad_norm,
                    active=self.gan_active,
                )
            )
        return out
