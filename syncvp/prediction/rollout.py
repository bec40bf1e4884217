"""Autoregressive multi-modal prediction (docs/method.md §5): context frames -> any number of future frames.

One chunk: encode each modality's last `context_frames` frames into its conditioning latent
(with its context autoencoder, or with `diffusion.context_encoder: future` through its future
autoencoder after repeating the last frame, `syncvp.models.context`), sample all modalities' future latents together with the joint model (or one modality with a
stage-1 model), decode them with the future autoencoders. Chunks are chained: the next context
is the last `context_frames` frames of (context ++ everything predicted so far), re-encoded, until
the requested number of frames exists; the last chunk is cut to length.

A modality outside `present` has no observed context: its conditioning is zeros (as trained with
modality dropout) until `context_frames` of its frames have been predicted (after the first chunk
unless chunks are shorter than the context); from then on it is conditioned on its own predictions. N trajectories per video run as one batch.

What is fed back: an image modality (`quantize`) is fed back as uint8 frames read back,
`k / 127.5 - 1`, with k the rounded or (the paper's `((1 + x) * 127.5).type(torch.uint8)`)
truncated level of the decoded chunk, at the modality's channels or, for a gray modality through a
3-channel network (`gray_to_rgb`), at the network's 3 channels (`syncvp.metrics.images.Quantisation`).
`rollouts` runs one rollout per quantisation, sharing the first chunk (see there); `rollout` is the
rounded one.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from syncvp.diffusion.guidance import classifier_free_denoiser, modality_guided_denoiser
from syncvp.diffusion.samplers import Sampler
from syncvp.diffusion.target import DiffusionTarget, base_of
from syncvp.metrics.images import Quantisation, Rounding, snap
from syncvp.models.autoencoder import TriplaneAutoencoder
from syncvp.models.context import ContextEncoder, Extrapolation, conditioning_clip, context_latent_shape, encode_context
from syncvp.models.joint_unet import JointUNet
from syncvp.progress import ProgressEvent, ProgressFn, no_progress
from syncvp.training.fastpath import GraphedDenoiser

PRECISIONS = ("fp32", "bf16")  # sampling.precision
_logger = logging.getLogger(__name__)


def quantize_uint8(video: Tensor, rounding: Rounding = "round") -> Tensor:
    """Snap model-space values in [-1, 1] to the 256 levels of a uint8 image, as a prediction
    written to disk and read back would be (`syncvp.metrics.images.snap`)."""
    return snap(video, rounding)


def network_view(ae: TriplaneAutoencoder) -> TriplaneAutoencoder:
    """`ae` seen at its network's channels: a one-channel modality run through a 3-channel network
    (`gray_to_rgb`) then encodes 3-channel videos and decodes to 3 channels (no averaging). The view
    shares every parameter with `ae`; other autoencoders are returned as they are."""
    spec = ae.spec
    if spec.net_channels == spec.channels:
        return ae
    view = copy.copy(ae)  # a shallow copy: the same submodules and parameters, its own `spec`
    view.spec = dataclasses.replace(spec, channels=spec.net_channels)
    return view


@dataclass
class Predictor:
    """Frozen networks and the sampler that predict future frames of K modalities.

    Attributes:
        context_autoencoders: {m: autoencoder of `context_frames` frames} (encodes conditioning).
        future_autoencoders: {m: autoencoder of a future chunk} (decodes predictions).
        model: a `JointUNet` over every modality, or a stage-1 `TriplaneUNet` (one modality).
        sampler: the reverse process (its `same_noise` shares noise between modalities).
        guidance_weight: w of modality guidance (joint) or classifier-free guidance (single).
        quantize: modalities fed back as uint8 frames after each chunk (image modalities).
        batched_guidance: run the guidance passes as one batched call.
        context_encoder: how context frames become the conditioning latent ("context": the
            context autoencoder; "future": the future autoencoder on the held context).
        context_motion: the conditioning carries motion channels (`diffusion.context_motion`).
        context_extrapolation: the clip that context_encoder "future" encodes: "hold" or "flow"
            (`diffusion.context_extrapolation`), one for every modality or {m: its own}.
        extrapolation_blur: the Gaussian blur of the flow extrapolation, pixels per lead frame
            (`diffusion.extrapolation_blur`).
        anchor: "latent" (decode the sampled latent) or "pixels" (`sampling.anchor`): for a
            residual model on the flow extrapolation, a present modality's chunk is the
            extrapolated frames plus D(sampled latent) - D(conditioning latent), the change the
            model added, decoded; other models, held modalities and missing modalities are decoded
            as with "latent" (they have no extrapolated frames). `anchored` names the modalities
            it applies to.
        target: the diffusion space the model samples in (`syncvp.diffusion.target`): samples map
            back to latents through it, and `clip_x0` clamps to the latents' range within it.
        context_frames: observed frames per chunk; None = the context autoencoders' length (it
            must be given with context_encoder "future", whose "context autoencoders" are the
            future ones).
        precision: the denoiser's arithmetic (`sampling.precision`): "fp32", or "bf16" (every
            network call of the sampler under bf16 autocast on the model's device, its outputs
            cast back to fp32; the sampler's own update, the autoencoders and the metrics stay
            fp32).
        cuda_graphs: on a CUDA model, replay the sampler's denoiser from one CUDA graph captured
            per sampled chunk (`syncvp.training.fastpath.GraphedDenoiser`, params
            `run.cuda_graphs`; the conditioning is closed over, so each chunk captures its own).
            Elsewhere a no-op. A capture that fails leaves one warning through `warn`, and the
            denoiser is called plainly from then on (no further capture is tried). Speed only.
        warn: receives the warning of a failed capture (default: this module's logger).
    """

    context_autoencoders: Mapping[str, TriplaneAutoencoder]
    future_autoencoders: Mapping[str, TriplaneAutoencoder]
    model: nn.Module
    sampler: Sampler
    guidance_weight: float = 0.0
    quantize: frozenset[str] = field(default_factory=frozenset)
    batched_guidance: bool = True
    context_encoder: ContextEncoder = "context"
    context_motion: bool = False
    context_extrapolation: Extrapolation | Mapping[str, Extrapolation] = "hold"
    extrapolation_blur: float = 0.0
    anchor: str = "latent"
    target: DiffusionTarget = field(default_factory=DiffusionTarget)
    context_frames: int | None = None
    precision: str = "fp32"
    cuda_graphs: bool = False
    warn: Callable[[str], None] = field(default_factory=lambda: _logger.warning, repr=False, compare=False)
    _capture_failed: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        self.joint = isinstance(self.model, JointUNet)
        self.modalities = tuple(self.model.modalities) if self.joint else tuple(self.future_autoencoders)
        if not self.joint and len(self.modalities) != 1:
            raise ValueError(f"a stage-1 model predicts one modality, got autoencoders for {list(self.modalities)}")
        for name, aes in (("context", self.context_autoencoders), ("future", self.future_autoencoders)):
            if set(aes) != set(self.modalities):
                raise ValueError(
                    f"{name} autoencoders are given for {sorted(aes)}, the model predicts {list(self.modalities)}"
                )
        first = self.modalities[0]
        if self.context_frames is None:
            if self.context_encoder == "future":
                raise ValueError(
                    "context_encoder 'future' needs context_frames (the context autoencoders are the future ones)"
                )
            self.context_frames = self.context_autoencoders[first].spec.frames
        self.future_frames = self.future_autoencoders[first].spec.frames
        for m in self.modalities:
            ctx = self.context_frames if self.context_encoder == "future" else self.context_autoencoders[m].spec.frames
            if (ctx, self.future_autoencoders[m].spec.frames) != (self.context_frames, self.future_frames):
                raise ValueError(f"autoencoders of {m!r} disagree with {first!r} on context/future frames")
        if self.anchor not in ("latent", "pixels"):
            raise ValueError(f"anchor must be 'latent' or 'pixels', got {self.anchor!r}")
        self.anchored = frozenset(
            m
            for m in self.modalities
            if self.anchor == "pixels"
            and self.context_encoder == "future"
            and self.extrapolation(m) == "flow"
            and self.target.residual
        )
        unknown = set(self.quantize) - set(self.modalities)
        if unknown:
            raise ValueError(f"quantize names {sorted(unknown)}, not modalities of the model {list(self.modalities)}")

    def extrapolation(self, modality: str) -> Extrapolation:
        """The extrapolation of `modality`'s context frames."""
        e = self.context_extrapolation
        return e if isinstance(e, str) else e.get(modality, "hold")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _check_context(self, context: Mapping[str, Tensor], present: frozenset[str]) -> tuple[int, torch.dtype]:
        if not present <= set(self.modalities):
            raise ValueError(f"present {sorted(present)} names modalities outside {list(self.modalities)}")
        missing = present - set(context)
        if missing:
            raise ValueError(f"present modalities {sorted(missing)} have no context frames")
        ref = None
        for m in present:
            spec = self.context_autoencoders[m].spec
            v = context[m]
            want = (spec.channels, *spec.resolution)
            if v.ndim != 5 or (v.shape[1], *v.shape[3:]) != want or v.shape[2] < self.context_frames:
                raise ValueError(
                    f"context {m!r} must be [B, {want[0]}, >= {self.context_frames}, {want[1]}, "
                    f"{want[2]}] in [-1, 1], got {tuple(v.shape)}"
                )
            if ref is not None and v.shape[0] != ref:
                raise ValueError(f"context batch sizes differ: {ref} and {v.shape[0]} ({m!r})")
            ref = v.shape[0]
        return ref, context[next(iter(present))].dtype

    def _denoiser(self, cond: dict[str, Tensor], present: frozenset[str]):
        w = self.guidance_weight
        if self.joint:
            plain = modality_guided_denoiser(self.model, cond, present, w, batched=self.batched_guidance)
        else:
            (m,) = self.modalities
            c = cond[m] if m in present else torch.zeros_like(cond[m])
            single = classifier_free_denoiser(self.model, c, w, batched=self.batched_guidance)

            def plain(x, t):
                return {m: single(x[m], t)}

        if self.precision == "fp32":
            return plain
        device_type = self.device.type
        cache = not self.cuda_graphs  # a CUDA graph capture needs autocast without its weight-cast cache

        def bf16(x, t):
            with torch.autocast(device_type, dtype=torch.bfloat16, cache_enabled=cache):
                out = plain(x, t)
            return {k: v.float() for k, v in out.items()}

        return bf16

    def _autoencoders(self, m: str, frames: Tensor) -> tuple[TriplaneAutoencoder, TriplaneAutoencoder]:
        """The (context, future) autoencoders of `m` that encode `frames` (network views for frames
        at the network's channels, fed back by a `Quantisation(network_channels=True)` rollout)."""
        ae, future_ae = self.context_autoencoders[m], self.future_autoencoders[m]
        if frames.shape[1] != future_ae.spec.channels:
            return network_view(ae), network_view(future_ae)
        return ae, future_ae

    @torch.no_grad()
    def sample_chunk(
        self,
        context: Mapping[str, Tensor],
        present: frozenset[str],
        generator: torch.Generator,
        batch: int | None = None,
        progress: ProgressFn | None = None,
        known: Mapping[str, Tensor] | None = None,
        sampler: Sampler | None = None,
        resample: int = 1,
        known_as_context: bool = False,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The sampled future latents {m: [B, C', L]} of one chunk and the conditioning {m: [B, C'', L']}
        they were sampled from, given the last `context_frames` frames (`batch`: B, used only when no
        modality is present; `progress`: the sampler's ProgressEvent("sample", step, steps) after
        every step). `decode_chunk` turns them into frames.

        `known` {m: [B, C, future_frames, H, W]}: the chunk's true frames of modalities whose future
        is given (modality completion, `complete`): their latents are held by replacement
        (`Sampler.sample(known=...)`, with `resample`) and only the others are sampled; `sampler`
        replaces the predictor's own for this chunk (completion needs more than one step). With
        `known_as_context` and a conditioning clip in the future latent space (`context_encoder`
        "future") the known frames are also that modality's conditioning clip (the residual about
        it is zero); other models take the replacement alone."""
        device = self.device
        cond = {}
        for m in self.modalities:
            if m in present:
                ae, future_ae = self._autoencoders(m, context[m])
                cond[m] = encode_context(
                    context[m][:, :, -self.context_frames :].to(device),
                    self.context_encoder,
                    ae,
                    future_ae,
                    motion=self.context_motion,
                    extrapolation=self.extrapolation(m),
                    blur=self.extrapolation_blur,
                )
            else:
                ae, future_ae = self.context_autoencoders[m], self.future_autoencoders[m]
                size = next(iter(context[p] for p in present)).shape[0] if present else batch
                if size is None:
                    raise ValueError("at least one modality must be present (or `batch` given) to know the batch size")
                shape = context_latent_shape(self.context_encoder, ae, future_ae, self.context_motion)
                cond[m] = torch.zeros(size, shape.channels, shape.length, device=device)
        shapes = {
            m: (
                cond[m].shape[0],
                self.future_autoencoders[m].latent_shape.channels,
                self.future_autoencoders[m].latent_shape.length,
            )
            for m in self.modalities
        }
        like = {m: torch.zeros(shape, device=device) for m, shape in shapes.items()}
        bounds = {m: self.target.bounds(m, like[m], cond[m]) for m in self.modalities}
        x0_known = {}
        for m, frames in (known or {}).items():
            if not self.joint or m not in present:
                raise ValueError(f"a known future needs the joint model and {m!r} present (its context observed)")
            z = self._autoencoders(m, frames)[1].encode(frames.to(device))
            if known_as_context and self.context_encoder == "future":  # the true future is the conditioning clip
                cond[m] = torch.cat([z, cond[m][:, z.shape[1] :]], dim=1)
                bounds[m] = self.target.bounds(m, like[m], cond[m])
            x0_known[m] = self.target.encode(m, z, cond[m])
        denoiser = self._denoiser(cond, present)
        if self.cuda_graphs and not self._capture_failed:  # captured on CUDA only: elsewhere a plain call
            # the examples are what the sampler passes: fp32 latents of `shapes` (every modality,
            # known ones included) and t = torch.full((B,), step, dtype=torch.long), so every step replays
            batch_size = next(iter(shapes.values()))[0]
            denoiser = GraphedDenoiser(
                denoiser, like, torch.zeros(batch_size, dtype=torch.long, device=device), warn=self.warn
            )
            self._capture_failed = denoiser.failed  # warned once: plain calls from now on
        out = (sampler or self.sampler).sample(
            denoiser,
            shapes,
            generator=generator,
            device=device,
            x0_bounds=bounds,
            progress=progress,
            known=x0_known or None,
            resample=resample,
        )
        return out.sample, cond

    @torch.no_grad()
    def decode_chunk(
        self,
        sample: Mapping[str, Tensor],
        cond: Mapping[str, Tensor],
        context: Mapping[str, Tensor],
        present: frozenset[str],
        network_channels: bool = False,
    ) -> dict[str, Tensor]:
        """The decoded frames {m: [B, C, future_frames, H, W]} of `sample_chunk`'s output, clamped to
        [-1, 1] and not quantised (C: the network's channels with `network_channels`)."""
        device = self.device
        chunk = {}
        for m in self.modalities:
            ae = self.future_autoencoders[m]
            if network_channels:
                ae = network_view(ae)
            latent = self.target.decode(m, sample[m], cond[m]).clamp(-1, 1)
            video = ae.decode(latent)
            if m in self.anchored and m in present:
                base = base_of(cond[m], latent.shape[1])
                frames = conditioning_clip(
                    context[m][:, :, -self.context_frames :].to(device),
                    self.future_frames,
                    self.extrapolation(m),
                    self.extrapolation_blur,
                )
                video = frames + (video - ae.decode(base))
            chunk[m] = video.clamp(-1, 1)
        return chunk

    @torch.no_grad()
    def predict_chunk(
        self,
        context: Mapping[str, Tensor],
        present: frozenset[str],
        generator: torch.Generator,
        batch: int | None = None,
    ) -> dict[str, Tensor]:
        """One chunk {m: [B, C, future_frames, H, W]} from the last `context_frames` frames
        (`batch`: B, used only when no modality is present); `quantize` modalities rounded to uint8 levels."""
        sample, cond = self.sample_chunk(context, present, generator, batch)
        chunk = self.decode_chunk(sample, cond, context, present)
        return {m: quantize_uint8(v) if m in self.quantize else v for m, v in chunk.items()}

    def _distinct(self, quantisation: Quantisation, chunks: int) -> Quantisation:
        """The rollout-relevant part of `quantisation` for `chunks` chunks (two quantisations that agree
        here give the same rollout: the rounding only matters for fed-back frames)."""
        gray = any(ae.spec.net_channels != ae.spec.channels for ae in self.future_autoencoders.values())
        fed_back = bool(self.quantize) and chunks > 1
        return Quantisation(quantisation.rounding if fed_back else "round", quantisation.network_channels and gray)

    @torch.no_grad()
    def rollouts(
        self,
        context: Mapping[str, Tensor],
        frames: int,
        *,
        generator: torch.Generator,
        quantisations: Iterable[Quantisation] = (Quantisation(),),
        present: Iterable[str] | None = None,
        trajectories: int = 1,
        progress: ProgressFn = no_progress,
        batch: int | None = None,
        step_progress: ProgressFn | None = None,
    ) -> dict[Quantisation, dict[str, Tensor]]:
        """Predict `frames` future frames of every modality once per quantisation of the fed-back frames.

        Each `quantisations` entry q gives the rollout in which the `quantize` modalities' decoded
        chunks become uint8 frames by q (rounding, channels) and those frames are the context of the
        next chunk. The first chunk sees only the given context, so it is sampled once and shared;
        each later chunk is sampled per distinct rollout from the generator state the first chunk left,
        so every rollout draws the noise a rollout of it alone would (common random numbers). With
        one chunk, no `quantize` modality, or the same frames fed back, rollouts are shared.

        Args: as `rollout`, plus `quantisations` (the distinct ones are run, in order);
            `step_progress` counts the sampling steps of the first rollout's chunks only.

        Returns:
            {q: {m: [B, N, C, frames, H, W]}} in model space on the model's device: the decoded
            frames clamped to [-1, 1], before quantisation (score them with q's rounding: those are
            exactly the frames that were fed back); C is the network's with `q.network_channels`.
            The generator is left where the last rollout left it.
        """
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        if trajectories < 1:
            raise ValueError(f"trajectories must be >= 1, got {trajectories}")
        quantisations = list(quantisations)
        if not quantisations:
            raise ValueError("rollouts needs at least one Quantisation")
        present = frozenset(self.modalities if present is None else present)
        if not present and (batch is None or batch < 1):
            raise ValueError(f"at least one modality must be present, or `batch` >= 1 given (got {batch})")
        batch = self._check_context(context, present)[0] if present else batch
        device = self.device
        first = {
            m: context[m][:, :, -self.context_frames :].to(device).repeat_interleave(trajectories, dim=0)
            for m in present
        }
        chunks = -(-frames // self.future_frames)
        distinct = list(dict.fromkeys(self._distinct(q, chunks) for q in quantisations))
        total = frames + (len(distinct) - 1) * max(0, frames - self.future_frames)

        def on_step(k: int):
            if step_progress is None:
                return None

            def report(e: ProgressEvent) -> None:
                step_progress(
                    ProgressEvent(
                        "predict",
                        k * e.total + e.done,
                        chunks * e.total,
                        metrics={"chunk": k + 1, "chunks": chunks},
                        message=f"chunk {k + 1}/{chunks}",
                    )
                )

            return report

        shared = self.sample_chunk(first, present, generator, batch=batch * trajectories, progress=on_step(0))
        after_first = generator.get_state()
        done_all = 0
        runs = {}
        for q in distinct:
            generator.set_state(after_first)
            ctx, now = dict(first), present
            predicted: dict[str, list[Tensor]] = {m: [] for m in self.modalities}
            for k in range(chunks):
                steps = on_step(k) if q == distinct[0] else None
                sample, cond = (
                    shared if k == 0 else self.sample_chunk(ctx, now, generator, batch * trajectories, progress=steps)
                )
                chunk = self.decode_chunk(sample, cond, ctx, now, q.network_channels)
                for m in self.modalities:
                    predicted[m].append(chunk[m])
                    fed = snap(chunk[m], q.rounding) if m in self.quantize else chunk[m]
                    before = ctx[m] if m in ctx else fed[:, :, :0]
                    if before.shape[1] != fed.shape[1]:  # network-channel frames after observed ones
                        before = before.expand(-1, fed.shape[1], -1, -1, -1)
                    ctx[m] = torch.cat([before, fed], dim=2)[:, :, -self.context_frames :]
                # a modality missing at the start joins once enough of its frames have been predicted
                now = frozenset(m for m in ctx if ctx[m].shape[2] >= self.context_frames)
                if k > 0 or q == distinct[0]:
                    done_all += min(self.future_frames, frames - k * self.future_frames)
                    progress(ProgressEvent("rollout", done_all, total))
            out = {}
            for m in self.modalities:
                video = torch.cat(predicted[m], dim=2)[:, :, :frames]
                out[m] = video.reshape(batch, trajectories, *video.shape[1:])
            runs[q] = out
        return {q: runs[self._distinct(q, chunks)] for q in quantisations}

    @torch.no_grad()
    def complete(
        self,
        given: Mapping[str, Tensor],
        *,
        generator: torch.Generator,
        trajectories: int = 1,
        sampler: Sampler | None = None,
        resample: int = 1,
        known_as_context: bool = False,
        progress: ProgressFn = no_progress,
    ) -> dict[str, Tensor]:
        """Modality completion: every frame of the `given` modalities known, the joint model samples
        the other modalities for the same frames (e.g. depth for a whole RGB video).

        The video is cut into chunks of `future_frames` frames; each chunk is sampled with the given
        modalities' true future held by replacement (`sample_chunk(known=...)`), conditioned on the
        given modalities' frames before it and on the completed frames before it of the others. The
        first chunk's context is the video's first frame repeated (the scene standing still before
        the video starts), and the others have none there (zeros, as trained with modality dropout);
        a last chunk that would run past the end is aligned to the end (only its new frames are
        kept); a video shorter than one chunk is padded with its last frame.

        Args:
            given: {m: [B, C, T, H, W]} in model space, every given modality the same T >= 1.
            generator: the only randomness.
            trajectories: N completions per video (one batch).
            sampler: the sampler of every chunk (default: the predictor's); one DDIM step sees the
                given frames only at t = T - 1, where they are noise, so completion wants more.
            resample: RePaint resampling per step (`Sampler.sample`).
            progress: ProgressEvent("complete", frames done, T).

        Returns:
            {m: [B, N, C, T, H, W]} of every modality not given (`quantize` modalities snapped to
            uint8 levels, as fed back), on the model's device.
        """
        if not self.joint:
            raise ValueError("modality completion needs the joint model (a stage-1 model predicts one modality)")
        names = frozenset(given)
        missing = [m for m in self.modalities if m not in names]
        if not names or not missing or not names <= set(self.modalities):
            raise ValueError(
                f"given must name some but not all of the model's modalities {list(self.modalities)}, got {sorted(names)}"
            )
        lengths = {v.shape[2] for v in given.values()}
        batches = {v.shape[0] for v in given.values()}
        if len(lengths) != 1 or len(batches) != 1 or min(lengths) < 1:
            raise ValueError(
                f"given videos must share batch size and length >= 1, got { {m: tuple(v.shape) for m, v in given.items()} }"
            )
        (total,) = lengths
        (batch,) = batches
        if trajectories < 1:
            raise ValueError(f"trajectories must be >= 1, got {trajectories}")
        self._check_context(
            {m: v[:, :, :1].expand(-1, -1, self.context_frames, -1, -1) for m, v in given.items()}, names
        )
        device, c, f = self.device, self.context_frames, self.future_frames
        length = max(total, f)
        video = {}
        for m, v in given.items():
            v = v.to(device).repeat_interleave(trajectories, dim=0)
            pad = [v, v[:, :, -1:].expand(-1, -1, length - total, -1, -1)] if length > total else [v]
            first = v[:, :, :1].expand(-1, -1, c, -1, -1)  # the still prefix
            video[m] = torch.cat([first, *pad], dim=2)  # frame i of the video at index c + i
        done: dict[str, list[Tensor]] = {m: [] for m in missing}
        end = 0
        while end < length:
            start = min(end, length - f)
            window = slice(c + start, c + start + f)
            context = {m: video[m][:, :, c + start - c : c + start] for m in names}
            have = start >= c and end >= start  # the missing modalities' frames before the chunk exist
            if have:
                for m in missing:
                    context[m] = torch.cat(done[m], dim=2)[:, :, start - c : start]
            present = names | (frozenset(missing) if have else frozenset())
            known = {m: video[m][:, :, window] for m in names}
            sample, cond = self.sample_chunk(
                context,
                present,
                generator,
                batch=batch * trajectories,
                known=known,
                sampler=sampler,
                resample=resample,
                known_as_context=known_as_context,
            )
            chunk = self.decode_chunk(sample, cond, context, present)
            for m in missing:
                frames = snap(chunk[m], "round") if m in self.quantize else chunk[m]
                done[m].append(frames[:, :, end - start :])
            end = start + f
            progress(ProgressEvent("complete", min(end, total), total, message=f"{min(end, total)}/{total} frames"))
        out = {}
        for m in missing:
            v = torch.cat(done[m], dim=2)[:, :, :total]
            out[m] = v.reshape(batch, trajectories, *v.shape[1:])
        return out

    @torch.no_grad()
    def rollout(
        self,
        context: Mapping[str, Tensor],
        frames: int,
        *,
        generator: torch.Generator,
        present: Iterable[str] | None = None,
        trajectories: int = 1,
        progress: ProgressFn = no_progress,
        batch: int | None = None,
        step_progress: ProgressFn | None = None,
    ) -> dict[str, Tensor]:
        """Predict `frames` future frames of every modality (`quantize` modalities rounded to uint8
        levels after each chunk, and fed back so).

        Args:
            context: {m: [B, C, T_c, H, W]} in model space [-1, 1] with T_c >= context_frames (the
                last ones are used); modalities outside `present` may be absent.
            frames: how many future frames to return (any number >= 1).
            generator: the only randomness (sampling noise); the same generator state gives the
                same predictions.
            present: modalities whose context is observed (default: all of the model's).
            trajectories: N samples per video.
            progress: receives ProgressEvent("rollout", frames done, frames).
            batch: the number of videos B when no modality is present (e.g. a stage-1 model of an
                unobserved modality: unconditional first chunk); ignored otherwise.
            step_progress: receives ProgressEvent("predict", steps done, chunks x steps,
                message="chunk k/n", metrics={"chunk": k, "chunks": n}) after every sampling
                step of every chunk (the N trajectories are one batch: they advance together).

        Returns:
            {m: [B, N, C, frames, H, W]} in model space, on the model's device.
        """
        (out,) = self.rollouts(
            context,
            frames,
            generator=generator,
            present=present,
            trajectories=trajectories,
            progress=progress,
            batch=batch,
            step_progress=step_progress,
        ).values()
        return {m: quantize_uint8(v) if m in self.quantize else v for m, v in out.items()}
