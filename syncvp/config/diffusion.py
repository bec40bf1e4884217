"""Sections `unet`, `diffusion`, `joint` and `sampling`: the latent diffusion models and process.

Paper values (docs/method.md §3-§5, §8) are given in params.yaml comments; the defaults there are
tiny CPU-sized models. Settings that belong to one training stage only (learning rate, steps,
conditioning dropout, EMA) live in that stage's section.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from syncvp.config.loader import require

Prediction = Literal["eps", "x0", "v"]


def _check_positive(key: str, values: tuple[int, ...]) -> None:
    require(len(values) >= 1, key, "must list at least one value")
    for i, v in enumerate(values):
        require(v >= 1, f"{key}[{i}]", f"must be >= 1, got {v}")


@dataclass(frozen=True, kw_only=True)
class UNetConfig:
    """The triplane UNet (stage 1, and each branch of the joint model), docs/method.md §3.3.

    Attributes:
        model_channels: width of the first level (paper 256).
        channel_mult: width multiplier per level; a level after the first halves every plane axis
            (paper [1, 2]).
        num_res_blocks: residual blocks per level on the way down (paper 1; one more on the way up).
        attention_resolutions: downsampling rates (1, 2, 4, ...) whose blocks carry 2-D attention
            within each plane (paper [4, 2, 1]: every level). The 1-D cross-plane attention over
            the tokens of all three planes follows every block regardless.
        num_heads: heads of every attention layer (paper 8).
        norm_groups: GroupNorm groups (paper 32); must divide every level's width.
        dropout: dropout in the residual blocks (paper 0).
        condition_layout: how the context latent is laid on the future latent's planes before
            channel concatenation: "per_plane" (each context plane on the matching plane, the fix
            of docs/method.md §7.1) or "official" (zero-padded at the end, only to run official checkpoints).
    """

    model_channels: int
    channel_mult: tuple[int, ...]
    num_res_blocks: int
    attention_resolutions: tuple[int, ...]
    num_heads: int
    norm_groups: int
    dropout: float
    condition_layout: Literal["per_plane", "official"]

    def __post_init__(self) -> None:
        require(self.model_channels >= 1, "model_channels", f"must be >= 1, got {self.model_channels}")
        _check_positive("channel_mult", self.channel_mult)
        require(self.num_res_blocks >= 1, "num_res_blocks", f"must be >= 1, got {self.num_res_blocks}")
        for i, r in enumerate(self.attention_resolutions):
            require(r >= 1 and r & (r - 1) == 0, f"attention_resolutions[{i}]", f"must be a power of 2, got {r}")
        require(self.num_heads >= 1, "num_heads", f"must be >= 1, got {self.num_heads}")
        require(0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}")
        for width in self.widths:
            require(
                width % self.num_heads == 0,
                "num_heads",
                f"{self.num_heads} heads do not divide the level width {width}",
            )
            require(
                self.norm_groups >= 1 and width % self.norm_groups == 0,
                "norm_groups",
                f"{self.norm_groups} groups do not divide the level width {width}",
            )

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels of each level."""
        return tuple(self.model_channels * m for m in self.channel_mult)

    @property
    def levels(self) -> int:
        return len(self.channel_mult)


@dataclass(frozen=True, kw_only=True)
class DiffusionConfig:
    """The forward process and the network's parameterisation, docs/method.md §3.4.

    Attributes:
        timesteps: number of diffusion steps T (paper 1000).
        schedule: named beta schedule: "linear_sqrt" (LDM's "linear": betas linear in sqrt
            space, the paper's), "linear" (betas linear), "cosine" (improved DDPM, s = 0.008).
        beta_start: first beta of the linear schedules (paper 0.0015); unused by "cosine".
        beta_end: last beta of the linear schedules (paper 0.0195); unused by "cosine".
        prediction: what the network predicts: "eps" (paper), "x0" or "v".
        context_encoder: which autoencoder turns the context frames into the conditioning latent:
            "context" (the paper's: the `context_frames`-frame context autoencoder, a latent space
            of its own) or "future" (the context frames, the last one repeated up to
            `future_frames`, through the future autoencoder: the conditioning then lies in the
            target's own latent space and geometry, so "the future looks like the last frame,
            moved" is a short step for the network; the context autoencoders are not used).
        context_motion: with context_encoder "future", also condition on the latent change between
            the last two context frames, each encoded as a still clip (`syncvp.models.context`):
            C' more input channels that carry the velocity the held context loses (paper: false).
        context_extrapolation: with context_encoder "future", the clip the future autoencoder
            encodes as the conditioning: "hold" (the context frames, the last one repeated: the
            scene stands still) or "flow" (the last frame carried on along its optical flow from
            the previous one, one frame per future frame: the scene keeps its last velocity;
            `syncvp.models.context`). With `residual`, the model learns the change from it.
        extrapolate_modalities: the modalities that context_extrapolation "flow" applies to (null =
            every modality); the others are held. Flow suits textured modalities (RGB); a smooth one
            (depth: a ramp with few edges) gives Farneback little to track and its sharp
            extrapolation drifts (README).
        extrapolation_blur: with context_extrapolation "flow", blur future frame k of the
            extrapolation by a Gaussian of sigma extrapolation_blur * k pixels (0 = sharp): the
            mean future when the velocity is less certain the further ahead (README).
        residual: diffuse the change of the future latent from the conditioning latent instead of
            the latent itself (needs context_encoder "future"; `syncvp.diffusion.target`).
        normalize: divide the diffused quantity by its standard deviation over the training
            windows (measured once, stored in the model file), so it has unit spread (paper: false;
            its latents are used as they are).
        min_snr_gamma: null (the paper's plain L_simple) or gamma > 0 of min-SNR-gamma loss
            weighting (Hang et al. 2023; 5 in their paper).
        high_noise_share: share of the training timesteps drawn uniformly from the high-noise end
            [high_noise_from, T-1] instead of from all of [0, T-1] (paper 0: uniform). Few-step
            sampling starts at t = T-1, where the network predicts the future from the context
            alone; this spends more of a short training there while the rest stays uniform.
        high_noise_from: first timestep of that high-noise end (0 <= it <= T-1).
    """

    timesteps: int
    schedule: Literal["linear_sqrt", "linear", "cosine"]
    beta_start: float
    beta_end: float
    prediction: Prediction
    context_encoder: Literal["context", "future"]
    context_motion: bool
    context_extrapolation: Literal["hold", "flow"]
    extrapolate_modalities: tuple[str, ...] | None
    extrapolation_blur: float
    residual: bool
    normalize: bool
    min_snr_gamma: float | None
    high_noise_share: float
    high_noise_from: int

    def __post_init__(self) -> None:
        require(self.timesteps >= 2, "timesteps", f"must be >= 2, got {self.timesteps}")
        require(
            0.0 <= self.high_noise_share <= 1.0, "high_noise_share", f"must be in [0, 1], got {self.high_noise_share}"
        )
        require(
            0 <= self.high_noise_from < self.timesteps,
            "high_noise_from",
            f"must be in [0, timesteps - 1 = {self.timesteps - 1}], got {self.high_noise_from}",
        )
        require(
            self.min_snr_gamma is None or self.min_snr_gamma > 0,
            "min_snr_gamma",
            f"must be null or > 0, got {self.min_snr_gamma}",
        )
        require(
            not self.context_motion or self.context_encoder == "future",
            "context_motion",
            "needs context_encoder: future (the motion channels are future-autoencoder latents)",
        )
        require(
            self.context_extrapolation == "hold" or self.context_encoder == "future",
            "context_extrapolation",
            f"{self.context_extrapolation!r} needs context_encoder: future (it makes the clip the future autoencoder encodes)",
        )
        require(
            self.extrapolate_modalities is None or self.context_extrapolation == "flow",
            "extrapolate_modalities",
            f"chooses the modalities of the flow extrapolation: it must be null with context_extrapolation "
            f"{self.context_extrapolation}",
        )
        require(self.extrapolation_blur >= 0.0, "extrapolation_blur", f"must be >= 0, got {self.extrapolation_blur}")
        require(
            self.extrapolation_blur == 0.0 or self.context_extrapolation == "flow",
            "extrapolation_blur",
            f"blurs the flow extrapolation: it must be 0 with context_extrapolation {self.context_extrapolation}",
        )
        require(
            not self.residual or self.context_encoder == "future",
            "residual",
            "needs context_encoder: future (the change is taken in the future latent's own space)",
        )
        require(0.0 < self.beta_start < 1.0, "beta_start", f"must be in (0, 1), got {self.beta_start}")
        require(
            self.beta_start <= self.beta_end < 1.0,
            "beta_end",
            f"must be in [beta_start, 1), got {self.beta_end} (beta_start {self.beta_start})",
        )

    def extrapolation_of(self, modality: str) -> Literal["hold", "flow"]:
        """The extrapolation of `modality`'s context: "flow" where context_extrapolation is "flow"
        and extrapolate_modalities lists it (or is null), else "hold"."""
        if self.context_extrapolation == "flow" and (
            self.extrapolate_modalities is None or modality in self.extrapolate_modalities
        ):
            return "flow"
        return "hold"

    def extrapolations(self, modalities) -> dict[str, str]:
        """{modality: extrapolation_of(modality)}."""
        return {m: self.extrapolation_of(m) for m in modalities}


@dataclass(frozen=True, kw_only=True)
class JointConfig:
    """The joint model (stage 2, docs/method.md §4): one UNet branch per modality, linked by
    spatio-temporal cross-attention (STCA).

    Attributes:
        cross_attention: where STCA sits: "deep" (the paper's: the deepest `deep_levels` levels),
            "all" (after every block but the first convolution) or "none" (independent branches).
        deep_levels: how many of the deepest levels "deep" covers (paper 1 for the 2-level UNet;
            the official code uses 2 for UNets with more than 2 levels).
        split_planes: attend plane by plane (xy with xy, yt with yt, xt with xt; paper true) or
            over the whole token sequence.
        normalize: GroupNorm each modality's tokens before the attention (paper true).
        num_heads: STCA heads (paper 8).
        shared_weights: one UNet for every modality (paper false).
        same_noise: one noise tensor and one timestep for all modalities in training, and the
            same initial and per-step noise in sampling (paper true); false draws them per modality.
        stca_layout: "fixed" (tokens split into heads after moving channels last; residual from
            the raw input; zero-initialised output: the block starts as the identity) or
            "official" (the released code's channel-major head split and residual from the
            normalised input, docs/method.md §4.3, §7.2-7.3; only to run official checkpoints).
        locality: sigma, in tokens, of a fixed Gaussian position prior added to the STCA scores
            (0 = none: the paper's). Lets a branch without content of its own (a missing
            modality) take what the other branch has at its own position; needs `split_planes`
            and the fixed layout (`syncvp.models.cross_attention`).
        cross_inputs: each branch's stem also takes the other branches' inputs (their x_t and
            conditioning, plane by plane at the same positions) through a zero-initialised 3x3
            convolution added to its stem's output (`syncvp.models.joint_unet`; not in the paper,
            false there). A branch then sees where the other modality's content is, position for
            position, from its first layer: what predicting a missing modality, completing one, and
            keeping the predictions' edges together need. Zero-initialised, the joint model starts
            as its stage-1 branches.
    """

    cross_attention: Literal["deep", "all", "none"]
    deep_levels: int
    split_planes: bool
    normalize: bool
    num_heads: int
    shared_weights: bool
    same_noise: bool
    stca_layout: Literal["fixed", "official"]
    locality: float
    cross_inputs: bool

    def __post_init__(self) -> None:
        require(self.deep_levels >= 1, "deep_levels", f"must be >= 1, got {self.deep_levels}")
        require(self.num_heads >= 1, "num_heads", f"must be >= 1, got {self.num_heads}")
        require(self.locality >= 0, "locality", f"must be >= 0 (0 = no position prior), got {self.locality}")
        if self.locality:
            require(self.split_planes, "locality", "needs split_planes: true (positions exist only within a plane)")
            require(self.stca_layout == "fixed", "locality", "needs stca_layout: fixed (the official layout has none)")


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """The reverse process used for prediction, docs/method.md §5.

    Attributes:
        method: "ddim" (paper; with eta = 1 it is ancestral sampling on a strided schedule) or
            "ddpm" (ancestral over all timesteps with the posterior variance).
        steps: DDIM steps; timesteps int(linspace(-1, T - 1, steps + 1)), e.g. 999, 989, ..., 9
            for 100 steps (paper 100). Must be T for "ddpm".
        eta: DDIM stochasticity (paper 1.0; 0 = deterministic DDIM).
        clip_x0: clamp the predicted x0 to [-1, 1] at every step (paper true; latents are tanh-bounded).
        rederive_eps: after clamping, recompute eps from the clamped x0 (improved-diffusion's DDIM;
            makes DDIM with eta 1 over all steps identical to DDPM). false = the paper's sampler,
            which keeps the network's eps.
        guidance_weight: w >= 0 of classifier-free / modality guidance (docs/method.md §5.2; paper 0 =
            no guidance). Any w > 0 is applied (the official code ignored w >= 1).
        anchor: how a sampled latent becomes frames: "latent" (decode it: the paper's) or
            "pixels": for a model that diffuses the change from the flow extrapolation
            (`diffusion.context_extrapolation: flow` with `residual`), the extrapolated frames
            themselves plus the decoded change, D(c + change) - D(c), so the autoencoder's error
            on the extrapolation is not paid (`syncvp.prediction.rollout`); any other model, and a
            modality whose context is missing, has no extrapolated frames and is decoded as with
            "latent".
        completion: how modality completion (`python -m syncvp complete`, the evaluate
            conditions `complete-<m>`) gives the joint model the known future of a modality:
            "context" (its true frames are that modality's conditioning clip, and its latent is
            held at them by replacement; a model whose conditioning is not a future clip,
            `diffusion.context_encoder: context`, gets the replacement alone) or "replace"
            (replacement only, RePaint-style: its
            latent is set to a draw of q(x_t | true latent) before every step;
            `syncvp.diffusion.samplers`).
        completion_steps: DDIM steps of completion (null = `steps`). With one step the known
            latent is seen only at t = T - 1, where it is noise: "replace" then adds nothing.
        completion_resample: RePaint resampling, each step run this many times (1 = none).
        precision: the denoiser's arithmetic while sampling: "fp32" (the paper's) or "bf16" (each
            network call under bf16 autocast, outputs back in fp32; the sampler's update, the
            autoencoders and the metrics stay fp32). A speed option: about 1.3x faster per
            paper-size forward on a CPU with AVX512-BF16, more on GPUs; samples differ from fp32
            by bf16 rounding (README, "Fast paths").
    """

    method: Literal["ddim", "ddpm"]
    steps: int
    eta: float
    clip_x0: bool
    rederive_eps: bool
    guidance_weight: float
    anchor: Literal["latent", "pixels"]
    completion: Literal["context", "replace"]
    completion_steps: int | None
    completion_resample: int
    precision: Literal["fp32", "bf16"]

    def __post_init__(self) -> None:
        require(self.steps >= 1, "steps", f"must be >= 1, got {self.steps}")
        require(
            self.completion_steps is None or self.completion_steps >= 1,
            "completion_steps",
            f"must be >= 1 or null, got {self.completion_steps}",
        )
        require(self.completion_resample >= 1, "completion_resample", f"must be >= 1, got {self.completion_resample}")
        require(self.eta >= 0.0, "eta", f"must be >= 0, got {self.eta}")
        require(self.guidance_weight >= 0.0, "guidance_weight", f"must be >= 0, got {self.guidance_weight}")


PAPER_DIFFUSION = dict(
    timesteps=1000,
    schedule="linear_sqrt",
    beta_start=0.0015,
    beta_end=0.0195,
    prediction="eps",
    context_encoder="context",
    context_motion=False,
    context_extrapolation="hold",
    extrapolate_modalities=None,
    extrapolation_blur=0.0,
    residual=False,
    normalize=False,
    min_snr_gamma=None,
    high_noise_share=0.0,
    high_noise_from=0,
)
"""The paper's `diffusion` section (docs/method.md §3.4): `DiffusionConfig(**PAPER_DIFFUSION)`; the
paper_cityscapes preset sets the same (high_noise_from is unused with a share of 0)."""


def check_sampling(sampling: "SamplingConfig", diffusion: DiffusionConfig) -> None:
    """The sampler's cross-section rules (`syncvp.diffusion.factory.build_sampler` and `Params`
    both apply them): raises `FieldError` naming the `sampling` key."""
    require(
        sampling.steps <= diffusion.timesteps,
        "sampling.steps",
        f"{sampling.steps} exceeds diffusion.timesteps {diffusion.timesteps}",
    )
    require(
        (sampling.completion_steps or 1) <= diffusion.timesteps,
        "sampling.completion_steps",
        f"{sampling.completion_steps} exceeds diffusion.timesteps {diffusion.timesteps}",
    )
    require(
        sampling.method != "ddpm" or sampling.steps == diffusion.timesteps,
        "sampling.steps",
        f"sampling.method ddpm runs all diffusion.timesteps ({diffusion.timesteps}); sampling.steps is "
        f"{sampling.steps}",
    )
