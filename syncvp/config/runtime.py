"""Sections every stage may read: `run` and `weights` (`paths` is `syncvp.config.layout`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from syncvp.config.loader import require


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Process-wide settings.

    Attributes:
        seed: base seed of every random stream (models, data windows, sampling).
        device: "auto" uses CUDA when present, else CPU.
        threads: torch CPU threads (per process); 0 leaves torch's default.
        processes: training processes per node; > 1 runs the training stages under
            `torchrun --nproc_per_node processes` with data-parallel training (the global batch
            of each training section is split across all processes). Multi-node: torchrun's
            PET_NNODES / PET_NODE_RANK / PET_RDZV_ENDPOINT ... environment variables pass through.
        channels_last: run the 2-D convolutions of the trained networks in channels-last memory
            format (a speed option; same results within float tolerance): in training, and for
            the sampler's denoiser at evaluate / `predict` / `complete`.
        compile: `torch.compile` the trained networks in training, and the sampler's denoiser
            (the diffusion model called at every sampling step; the autoencoders stay eager) at
            evaluate / `predict` / `complete` (a speed option for GPUs; compiling costs minutes on
            CPU for small gains; a module that fails to compile runs eager, with one warning).
        cuda_graphs: replay the sampler's denoiser from one CUDA graph per sampled chunk at
            evaluate / `predict` / `complete` (CUDA only, a no-op elsewhere; a capture that fails
            calls the denoiser plainly, with one warning; speed only).
        activation_checkpointing: recompute each UNet block's activations in the backward pass
            instead of keeping them (the diffusion UNets and joint model, training only): less
            memory for more compute, the same gradients.
    """

    seed: int
    device: Literal["auto", "cpu", "cuda"]
    threads: int
    processes: int
    channels_last: bool
    compile: bool
    cuda_graphs: bool
    activation_checkpointing: bool

    def __post_init__(self) -> None:
        require(self.seed >= 0, "seed", f"must be >= 0, got {self.seed}")
        require(self.threads >= 0, "threads", f"must be >= 0, got {self.threads}")
        require(self.processes >= 1, "processes", f"must be >= 1, got {self.processes}")


@dataclass(frozen=True, kw_only=True)
class WeightsConfig:
    """Local paths of pretrained weights (null = not available). Nothing is downloaded.

    Attributes:
        depth_anything_vits / _vitb / _vitl: official `depth_anything_v2_vit{s,b,l}.pth`.
        i3d: `i3d_pretrained_400.pt` for FVD.
        lpips_alexnet: torchvision `alexnet-owt-7be5be79.pth`, the trunk of evaluation LPIPS.
        lpips_vgg16: torchvision `vgg16-397923af.pth`, the trunk of the training perceptual loss.
    """

    depth_anything_vits: Path | None
    depth_anything_vitb: Path | None
    depth_anything_vitl: Path | None
    i3d: Path | None
    lpips_alexnet: Path | None
    lpips_vgg16: Path | None
