"""The joint model (SyncVP stage 2, docs/method.md §4): one triplane UNet branch per modality, walked in
lockstep, with cross-modal attention (STCA) after the configured blocks.

The cross-attention list has one slot per branch block (input blocks, middle, output blocks),
built from the branch's own block list: STCA where enabled, the identity elsewhere.

- "deep" (the paper's): the blocks of the deepest `deep_levels` levels: the residual blocks on
  the way down (not the downsampling block), the middle block, and every block on the way up
  (with their upsampling). For channel_mult [1, 2]: after in3, mid, out0 and out1 (docs/method.md §4.2).
- "all": after every block except the stem convolution (the official code has no slot there).
- "none": the branches never exchange information: the model is K independent UNets.

With `cross_inputs`, each branch's stem output also receives a zero-initialised 3x3 plane
convolution of the other branches' inputs (x_t and the aligned conditioning, concatenated along
channels), so a branch sees the other modalities position for position from its first layer (not
in the paper; `joint.cross_inputs`).

Shared branch weights use one UNet for every modality. Stage-1 checkpoints load strictly into
the branches (`load_branches`).
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

from torch import Tensor, nn

from syncvp.models.cross_attention import CrossModalAttention, Layout, NoCrossAttention
from syncvp.models.unet import TriplaneUNet
import torch

from syncvp.models.unet_blocks import PlaneConv, Planes, UNetBlock, concat_skip, zero_module

Placement = Literal["deep", "all", "none"]


def cross_attention_slots(blocks: Sequence[UNetBlock], placement: Placement, deep_levels: int = 1) -> list[bool]:
    """For each block of a branch (walking order), whether STCA follows it."""
    if placement not in ("deep", "all", "none"):
        raise ValueError(f"unknown cross-attention placement {placement!r} (known: deep, all, none)")
    levels = 1 + max(b.level for b in blocks)
    if not 1 <= deep_levels <= levels:
        raise ValueError(f"deep_levels must be in [1, {levels}] for a UNet of {levels} levels, got {deep_levels}")
    if placement == "none":
        return [False] * len(blocks)
    if placement == "all":
        return [b.kind != "stem" for b in blocks]
    first_deep = levels - deep_levels
    return [b.kind in ("down", "middle", "up") and b.level >= first_deep for b in blocks]


class JointUNet(nn.Module):
    """K UNet branches linked by cross-attention: ({m: x_t}, t, {m: context}) -> {m: eps^}.

    Args:
        branches: {modality: TriplaneUNet} (separate weights), or one TriplaneUNet used by every
            modality of `modalities` (shared weights).
        modalities: the modality names, in order (required with a shared branch; otherwise the
            keys of `branches`).
        cross_attention, deep_levels: STCA placement (see `cross_attention_slots`).
        split_planes, normalize, num_heads, stca_layout, locality: see `CrossModalAttention`.
        norm_groups: GroupNorm groups of the STCA blocks.
        cross_inputs: add the other branches' inputs to each stem output (module docstring).
    """

    def __init__(self, branches: Mapping[str, TriplaneUNet] | TriplaneUNet, *, modalities: Sequence[str] | None = None,
                 cross_attention: Placement, deep_levels: int = 1, split_planes: bool = True, normalize: bool = True,
                 num_heads: int, norm_groups: int, stca_layout: Layout = "fixed", locality: float = 0.0,
                 cross_inputs: bool = False):
        super().__init__()
        self.shared = isinstance(branches, TriplaneUNet)
        if self.shared:
            if not modalities:
                raise ValueError("a shared branch needs the list of modalities")
            self.modalities = tuple(modalities)
            self.branches = nn.ModuleDict({"shared": branches})
        else:
            self.modalities = tuple(branches)
            if modalities is not None and tuple(modalities) != self.modalities:
                raise ValueError(f"modalities {tuple(modalities)} differ from the branches {self.modalities}")
            self.branches = nn.ModuleDict(branches)
        if len(self.modalities) < 2 or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"the joint model needs >= 2 distinct modalities, got {self.modalities}")
        reference = self._check_branches()
        slots = cross_attention_slots(reference.blocks, cross_attention, deep_levels)
        self.cross = nn.ModuleList([
            CrossModalAttention(self.modalities, block.channels, num_heads=num_heads, norm_groups=norm_groups,
                                split_planes=split_planes, normalize=normalize, layout=stca_layout,
                                locality=locality)
            if enabled else NoCrossAttention()
            for block, enabled in zip(reference.blocks, slots)
        ])
        assert len(self.cross) == len(reference.blocks), "one cross-attention slot per branch block"
        self.cross_inputs = None
        if cross_inputs:
            stem = reference.input_blocks[0].layers[0].conv
            width = {m: self.branch(m).input_blocks[0].layers[0].conv.in_channels for m in self.modalities}
            self.cross_inputs = nn.ModuleDict({
                m: zero_module(PlaneConv(sum(width[o] for o in self.modalities if o != m), stem.out_channels))
                for m in self.modalities
            })

    def _check_branches(self) -> TriplaneUNet:
        """Every branch must walk the same blocks on the same plane geometry."""
        first = self.branch(self.modalities[0])
        signature = [(b.kind, b.level, b.channels) for b in first.blocks]
        for m in self.modalities[1:]:
            other = self.branch(m)
            if [(b.kind, b.level, b.channels) for b in other.blocks] != signature:
                raise ValueError(f"branch {m!r} has a different block structure from {self.modalities[0]!r}")
            if other.layout != first.layout:
                raise ValueError(f"branch {m!r} has planes {other.layout.shapes}, {self.modalities[0]!r} has "
                                 f"{first.layout.shapes}: the modalities' latents must share H', W', T")
        return first

    def branch(self, modality: str) -> TriplaneUNet:
        return self.branches["shared" if self.shared else modality]

    @property
    def slots(self) -> list[bool]:
        """Whether each branch block is followed by cross-attention."""
        return [isinstance(c, CrossModalAttention) for c in self.cross]

    def forward(self, x: Mapping[str, Tensor], t: Tensor,
                context: Mapping[str, Tensor | None] | None = None) -> dict[str, Tensor]:
        """{m: x_t [B, C', L]}, t [B], {m: context [B, C_c, L_c]} -> {m: [B, C_out, L]}; a modality
        absent from `context` (or None) gets zeros, i.e. no conditioning."""
        if set(x) != set(self.modalities):
            raise ValueError(f"the joint model takes {self.modalities}, got {sorted(x)}")
        context = context or {}
        if set(context) - set(self.modalities):
            raise ValueError(f"context given for {sorted(set(context) - set(self.modalities))}, "
                             f"not modalities of the joint model {self.modalities}")
        names = self.modalities
        net = {m: self.branch(m) for m in names}
        emb = {m: net[m].time_embed(t) for m in names}
        h = {m: net[m].enter(x[m], context.get(m)) for m in names}
        n_in = len(net[names[0]].input_blocks)
        skips = {m: [] for m in names}
        for i in range(n_in):
            out = {m: net[m].input_blocks[i](h[m], emb[m]) for m in names}
            if i == 0 and self.cross_inputs is not None:
                out = {m: _add(out[m], self.cross_inputs[m](_concat([h[o] for o in names if o != m])))
                       for m in names}
            h = self.cross[i](out)
            for m in names:
                skips[m].append(h[m])
        h = self.cross[n_in]({m: net[m].middle_block(h[m], emb[m]) for m in names})
        for j in range(len(net[names[0]].output_blocks)):
            h = self.cross[n_in + 1 + j]({m: net[m].output_blocks[j](concat_skip(h[m], skips[m].pop()), emb[m])
                                          for m in names})
        return {m: net[m].exit(h[m]) for m in names}

    def load_branches(self, state_dicts: Mapping[str, Mapping[str, Tensor]]) -> None:
        """Load stage-1 UNet weights strictly: one state dict per modality (separate weights),
        or exactly one (shared weights). Any missing, unexpected or mis-shaped key raises."""
        if self.shared:
            if len(state_dicts) != 1:
                raise ValueError(f"shared branch weights take one stage-1 model, got {len(state_dicts)} "
                                 f"({', '.join(state_dicts)})")
            items = [("shared", next(iter(state_dicts.values())))]
        else:
            if set(state_dicts) != set(self.modalities):
                raise ValueError(f"stage-1 models given for {sorted(state_dicts)}, the branches are "
                                 f"{list(self.modalities)}")
            items = [(m, state_dicts[m]) for m in self.modalities]
        for name, state in items:  # check everything before touching any weight
            _check_state(self.branches[name], state, name)
        for name, state in items:
            self.branches[name].load_state_dict(state, strict=True)


def _concat(planes: Sequence[Planes]) -> Planes:
    """Planes of one layout concatenated along channels."""
    first = planes[0]
    tensors = tuple(torch.cat([p.tensors[k] for p in planes], dim=1) for k in range(len(first.tensors)))
    return Planes(first.layout, tensors, first.batch)


def _add(a: Planes, b: Planes) -> Planes:
    return Planes(a.layout, tuple(x + y for x, y in zip(a.tensors, b.tensors)), a.batch)


def _check_state(module: nn.Module, state: Mapping[str, Tensor], name: str) -> None:
    """Raise ValueError naming the first missing, unexpected or mis-shaped key."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", wrong)):
        if keys:
            more = f" (+{len(keys) - 3} more)" if len(keys) > 3 else ""
            raise ValueError(f"stage-1 weights do not fit branch {name!r}: {label} {', '.join(keys[:3])}{more}")
