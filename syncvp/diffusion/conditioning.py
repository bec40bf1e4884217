"""Which conditioning each training sample sees: conditioning dropout (stage 1) and modality
dropout patterns (stage 2), drawn per sample from an explicit generator.

A missing conditioning is zeros. The targets never move: every modality's target is the
`future_frames` frames right after the `context_frames` context frames, whatever was dropped
(the official code shifted a dropped modality's target window by 0-2 frames, docs/method.md §7.5, and
decided dropout once per batch, §7.6).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping

import torch
from torch import Tensor

Patterns = Mapping[frozenset[str], float]
"""{set of modalities whose conditioning is present: probability}, summing to 1."""


def split_clip(
    clip: Mapping[str, Tensor], context_frames: int, future_frames: int
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Cut every modality's clip [B, C, T, H, W] into context [.., :Tc, ..] and future
    [.., Tc:Tc+Tf, ..] on the same frames."""
    context, future = {}, {}
    for name, video in clip.items():
        if video.ndim != 5 or video.shape[2] < context_frames + future_frames:
            raise ValueError(
                f"{name}: need [B, C, T, H, W] with T >= {context_frames + future_frames}, got {tuple(video.shape)}"
            )
        context[name] = video[:, :, :context_frames]
        future[name] = video[:, :, context_frames : context_frames + future_frames]
    return context, future


def keep_condition(batch: int, cond_prob: float, generator: torch.Generator) -> Tensor:
    """Per-sample conditioning dropout: [B] bool, True (keep) with probability `cond_prob`
    (the official `cond_prob`, P(conditional), paper 0.7)."""
    if not 0.0 <= cond_prob <= 1.0:
        raise ValueError(f"cond_prob must be in [0, 1], got {cond_prob}")
    return torch.rand(batch, generator=generator, device=generator.device) < cond_prob


def drop_condition(cond: Tensor, keep: Tensor) -> Tensor:
    """cond [B, ...] with the samples where keep [B] is False replaced by zeros."""
    if keep.shape != cond.shape[:1]:
        raise ValueError(f"keep must have shape [{cond.shape[0]}], got {tuple(keep.shape)}")
    keep = keep.to(cond.device).reshape(-1, *([1] * (cond.ndim - 1)))
    return torch.where(keep, cond, torch.zeros((), dtype=cond.dtype, device=cond.device))


def check_patterns(patterns: Patterns, modalities: Iterable[str]) -> list[tuple[frozenset[str], float]]:
    """Validate modality-dropout patterns and return them in a canonical order.

    Each key is the set of modalities whose conditioning is present; probabilities are >= 0 and
    sum to 1. The order (by the modalities' order, then size) fixes how a generator's draws
    map to patterns, so the same seed gives the same patterns however the mapping was written.
    """
    modalities = list(modalities)
    index = {m: i for i, m in enumerate(modalities)}
    items = []
    for key, p in patterns.items():
        key = frozenset(key)
        unknown = key - set(modalities)
        if unknown:
            raise ValueError(f"pattern {sorted(key)} names unknown modalities {sorted(unknown)} (known: {modalities})")
        if not p >= 0:
            raise ValueError(f"pattern {sorted(key)} has probability {p} < 0")
        items.append((key, float(p)))
    if len({k for k, _ in items}) != len(items):
        raise ValueError("a pattern is listed twice")
    total = sum(p for _, p in items)
    if not math.isclose(total, 1.0, abs_tol=1e-6):
        raise ValueError(f"pattern probabilities must sum to 1, got {total} ({_describe(items)})")
    return sorted(items, key=lambda kp: (len(kp[0]), sorted(index[m] for m in kp[0])))


def sample_presence(
    batch: int, patterns: Patterns, modalities: Iterable[str], generator: torch.Generator
) -> dict[str, Tensor]:
    """Draw one pattern per sample; {modality: [B] bool, True where its conditioning is present}."""
    modalities = list(modalities)
    items = check_patterns(patterns, modalities)
    probs = torch.tensor([p for _, p in items], dtype=torch.float64, device=generator.device)
    drawn = torch.multinomial(probs, batch, replacement=True, generator=generator).cpu()
    table = torch.tensor([[m in key for m in modalities] for key, _ in items], dtype=torch.bool)
    present = table[drawn]
    return {m: present[:, i] for i, m in enumerate(modalities)}


def apply_presence(cond: Mapping[str, Tensor], present: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Every modality's conditioning [B, ...], zeroed in the samples where it is missing."""
    return {m: drop_condition(c, present[m]) for m, c in cond.items()}


def independent_patterns(modalities: Iterable[str], cond_prob: float) -> dict[frozenset[str], float]:
    """Patterns of independent per-modality dropout: P(S) = p^|S| (1 - p)^(K - |S|)."""
    modalities = list(modalities)
    out = {}
    for bits in range(2 ** len(modalities)):
        key = frozenset(m for i, m in enumerate(modalities) if bits >> i & 1)
        out[key] = cond_prob ** len(key) * (1 - cond_prob) ** (len(modalities) - len(key))
    return out


def official_patterns(modalities: Iterable[str], cond_prob: float) -> dict[frozenset[str], float]:
    """The released code's effective patterns (docs/method.md §4.4): independent dropout, but when every
    conditioning is dropped the first modality's is restored. For K = 2, p = 0.7: both 0.49,
    first only 0.30, second only 0.21, none 0."""
    modalities = list(modalities)
    out = independent_patterns(modalities, cond_prob)
    first = frozenset(modalities[:1])
    out[first] += out.pop(frozenset())
    out[frozenset()] = 0.0
    return out


def _describe(items) -> str:
    return ", ".join(f"{sorted(k)}: {p:g}" for k, p in items)
