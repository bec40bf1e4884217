"""`datasets.<name>.pseudo_depth`: Depth-Anything-V2 pseudo-labels for a dataset without depth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from syncvp.config.loader import require

PATCH = 14  # the DINOv2 patch size: network inputs are multiples of it


@dataclass(frozen=True, kw_only=True)
class TaskRunnerConfig:
    """Where the per-video tasks run (speed only: it never changes an output).

    Attributes:
        kind: "threads" (a thread pool in the stage's process, one model shared by the threads)
            or "dask" (prefect-dask; one model per Dask worker process).
        workers: threads in the pool, or worker processes of the local Dask cluster started when
            `address` is null; ignored when `address` names a running cluster.
        address: a running Dask scheduler, e.g. "tcp://10.0.0.5:8786" (kind dask only), or null.
    """

    kind: Literal["threads", "dask"]
    workers: int
    address: str | None

    def __post_init__(self) -> None:
        require(self.workers >= 1, "workers", f"must be >= 1, got {self.workers}")
        require(
            self.kind == "dask" or self.address is None,
            "address",
            f"only a dask task runner takes a scheduler address, got {self.address!r} with kind {self.kind!r}",
        )
        require(
            self.address is None or "://" in self.address,
            "address",
            f"must look like tcp://host:port, got {self.address!r}",
        )


@dataclass(frozen=True, kw_only=True)
class PseudoDepthConfig:
    """How the depth modality of a dataset is estimated from its RGB frames.

    Attributes:
        encoder: Depth-Anything-V2 size: vits (24.8 M parameters), vitb (97.5 M; the paper's
            choice for BAIR) or vitl (335.3 M; the paper's choice for OpenDV). The weights come
            from `weights.depth_anything_<encoder>`.
        input_size: the network sees frames resized (aspect kept, bicubic) so that the shorter
            side is this many pixels, both sides multiples of 14. The official value is 518.
        batch_size: frames per forward pass.
        normalization: how the relative inverse depth becomes uint8: "per_frame" min-max of
            every frame to 0-255 (the official convention) or "per_video" (one min-max per video,
            steadier over time). Larger = nearer in both.
        precision: "auto" (bf16 autocast on CUDA, float32 on CPU), "float32", or "bfloat16"
            (bf16 autocast on any device).
        task_runner: where the per-video tasks run.
    """

    encoder: Literal["vits", "vitb", "vitl"]
    input_size: int
    batch_size: int
    normalization: Literal["per_frame", "per_video"]
    precision: Literal["auto", "float32", "bfloat16"]
    task_runner: TaskRunnerConfig

    def __post_init__(self) -> None:
        require(
            self.input_size >= PATCH and self.input_size % PATCH == 0,
            "input_size",
            f"must be a positive multiple of {PATCH} (official: 518), got {self.input_size}",
        )
        require(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")

    @property
    def weights_key(self) -> str:
        """The `weights` entry holding this encoder's checkpoint."""
        return f"depth_anything_{self.encoder}"
