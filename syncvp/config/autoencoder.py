"""The `autoencoder` and `train_autoencoder` sections: the projected (triplane) video autoencoder
and how it is trained (docs/method.md §2).

Image channels, frames and resolution are not here: they come from the dataset (the store's
channel count for the modality, `context_frames` or `future_frames`, `resolution`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from syncvp.config.init_from import InitFrom, check_init
from syncvp.config.loader import require


@dataclass(frozen=True, kw_only=True)
class AutoencoderConfig:
    """Architecture of the projected video autoencoder (PVDM's ViT autoencoder).

    Attributes:
        width: hidden width d of the space-time transformers and axis projections (paper 192).
        depth: layers of the encoder and of the decoder (paper 8).
        heads: attention heads of the space-time transformers (paper 8).
        head_dim: width of one head (paper 64; the attention width heads * head_dim may differ
            from `width`). Must be divisible by 4 (axial rotary embedding).
        ff_mult: GEGLU feed-forward expansion (paper 4: d -> 2 * 4d -> d).
        axis_depth: layers of each of the three axis-projection transformers (paper 4).
        axis_heads: heads of the axis-projection transformers (paper 4).
        axis_head_dim: head width of the axis-projection transformers (paper width / 8 = 24).
        axis_mlp: hidden width of their GELU MLP (paper 512).
        patch_size: P; the latent grid is (H/P, W/P) (paper 4 for 64/128 px, 8 above).
        latent_channels: C', channels of the tanh-bounded triplane latent (paper 4; 16 above 128 px).
        gray_to_rgb: run one-channel modalities through a 3-channel network (input replicated,
            output averaged back), as the official depth checkpoints do. false = 1-channel network.
        axis_token: "clean" prepends each axis transformer's learnable token and reads it back;
            "pvdm" appends it and reads output index 0 (the first real element), the quirk of
            PVDM/SyncVP (docs/method.md §2.2, §7.14), needed to run the official checkpoints.
    """

    width: int
    depth: int
    heads: int
    head_dim: int
    ff_mult: int
    axis_depth: int
    axis_heads: int
    axis_head_dim: int
    axis_mlp: int
    patch_size: int
    latent_channels: int
    gray_to_rgb: bool
    axis_token: Literal["clean", "pvdm"]

    def __post_init__(self) -> None:
        for key in (
            "width",
            "depth",
            "heads",
            "ff_mult",
            "axis_depth",
            "axis_heads",
            "axis_head_dim",
            "axis_mlp",
            "patch_size",
            "latent_channels",
        ):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        require(
            self.head_dim >= 4 and self.head_dim % 4 == 0,
            "head_dim",
            f"must be a positive multiple of 4 (axial rotary embedding), got {self.head_dim}",
        )


@dataclass(frozen=True, kw_only=True)
class GanConfig:
    """The optional GAN fine-tune that follows reconstruction training (docs/method.md §2.4-2.5, phase B).

    It starts from the trained weights with a fresh AdamW at `lr` and its own cosine schedule
    (the official code silently kept the old schedule). Each step updates the autoencoder, then
    (from `disc_start` on) both discriminators on the same clips.

    Attributes:
        enabled: run the fine-tune.
        steps: optimizer steps of the fine-tune (paper: up to 5e4).
        lr: learning rate of the autoencoder and the discriminators (paper 1e-5).
        disc_start: fine-tune step from which the GAN terms are on; the discriminators are not
            even run before it (paper: from the start, -1 there, 0 here).
        gan_weight: weight of the generator hinge term -(mean D2 + mean D3) (paper 1.0).
        feature_weight: weight of the L1 feature matching over the discriminators' intermediate
            features (paper 4.0).
        ndf: channels of the first discriminator layer (paper 64).
        disc_layers: strided layers of each PatchGAN (paper 3).
        disc_grad_clip: gradient-norm clip applied to each discriminator (paper 1.0).
    """

    enabled: bool
    steps: int
    lr: float
    disc_start: int
    gan_weight: float
    feature_weight: float
    ndf: int
    disc_layers: int
    disc_grad_clip: float

    def __post_init__(self) -> None:
        require(self.steps >= 0, "steps", f"must be >= 0, got {self.steps}")
        require(not self.enabled or self.steps >= 1, "steps", "must be >= 1 when enabled")
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(self.disc_start >= 0, "disc_start", f"must be >= 0, got {self.disc_start}")
        for key in ("gan_weight", "feature_weight", "disc_grad_clip"):
            require(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        require(self.ndf >= 1, "ndf", f"must be >= 1, got {self.ndf}")
        require(self.disc_layers >= 1, "disc_layers", f"must be >= 1, got {self.disc_layers}")


@dataclass(frozen=True, kw_only=True)
class TrainAutoencoderConfig:
    """How each autoencoder is trained (reconstruction phase; docs/method.md §2.5 phase A).

    Attributes:
        steps: optimizer steps (paper: 1e6 iterations / 3 accumulation steps).
        batch_size: clips per micro-batch (paper: 1 per GPU on 2 GPUs for RGB, 2 for depth).
        grad_accum: micro-batches accumulated per optimizer step (paper 3).
        lr: AdamW learning rate (paper 1e-4).
        betas: AdamW betas (paper [0.5, 0.9]).
        weight_decay: AdamW weight decay (paper 0.01, the torch default).
        lr_min_ratio: the cosine schedule decays lr to lr * lr_min_ratio at the last step (paper 0.01).
        warmup_steps: linear learning-rate warm-up before the cosine decay (paper 0).
        pixel_weight: weight of the L1 pixel loss (paper 4.0).
        perceptual_weight: weight of the VGG16 LPIPS loss on one random frame per clip (paper 4.0);
            the term is off (and the log says so) while `weights.lpips_vgg16` is null.
        amp: bf16 autocast on CUDA (the paper uses fp16 AMP); CPU runs always use fp32.
        eval_every: steps between reconstruction metrics on held-out clips (0 = only at the end).
        eval_clips: held-out (val split) clips the metrics average over (paper 4).
        checkpoint_every: steps between resumable checkpoints (0 = only at the end of a phase).
        log_every: steps between progress reports and training-loss points.
        num_workers: DataLoader worker processes (0 = load in the training process).
        gan: the optional GAN fine-tune.
        init: "scratch" (random weights drawn from the unit's seed) or "checkpoint" (start from the
            same unit of another run: `init_from`; a fine-tune).
        init_from: with init checkpoint, the models folder and dataset to start from
            (`syncvp.config.init_from`); null otherwise.
    """

    steps: int
    batch_size: int
    grad_accum: int
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    lr_min_ratio: float
    warmup_steps: int
    pixel_weight: float
    perceptual_weight: float
    amp: bool
    eval_every: int
    eval_clips: int
    checkpoint_every: int
    log_every: int
    num_workers: int
    gan: GanConfig
    init: Literal["scratch", "checkpoint"]
    init_from: InitFrom | None

    def __post_init__(self) -> None:
        check_init(self.init, self.init_from)
        for key in ("steps", "batch_size", "grad_accum", "eval_clips", "log_every"):
            require(getattr(self, key) >= 1, key, f"must be >= 1, got {getattr(self, key)}")
        for key in (
            "warmup_steps",
            "eval_every",
            "checkpoint_every",
            "num_workers",
            "weight_decay",
            "pixel_weight",
            "perceptual_weight",
        ):
            require(getattr(self, key) >= 0, key, f"must be >= 0, got {getattr(self, key)}")
        require(self.lr > 0, "lr", f"must be > 0, got {self.lr}")
        require(all(0 <= b < 1 for b in self.betas), "betas", f"must lie in [0, 1), got {list(self.betas)}")
        require(0 <= self.lr_min_ratio <= 1, "lr_min_ratio", f"must lie in [0, 1], got {self.lr_min_ratio}")
        require(
            self.warmup_steps < self.steps, "warmup_steps", f"must be < steps ({self.steps}), got {self.warmup_steps}"
        )
        require(
            self.pixel_weight > 0 or self.perceptual_weight > 0,
            "pixel_weight",
            "pixel_weight and perceptual_weight cannot both be 0",
        )
