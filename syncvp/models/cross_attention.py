"""Spatio-temporal cross-attention (STCA) between the branches of the joint model (docs/method.md §4.3).

For two modalities x, y (the paper), with per-modality GroupNorm and 1x1 projections and no key
projection, one score map is shared by both directions:

    A = Q_x Q_y^T / sqrt(d),  Q_x = W_qx GN(x),  Q_y = W_qy GN(y),  V_x = W_vx GN(x), V_y = W_vy GN(y)
    x' = x + W_ox softmax_y(A) V_y,    y' = y + W_oy softmax_x(A^T) V_x

with W_o zero-initialised, so the block is the identity at initialisation (our fix of the
official residual `GN(x) + W_o(...)` with random W_o, docs/method.md §7.3). Tokens are split into heads after
moving channels last (§7.2). With `split_planes`, xy attends only to xy, yt to yt and xt to xt
(weights shared across planes, GroupNorm statistics per plane); otherwise the whole token
sequences attend to each other. Plane shapes come from the `Planes` state (no length table, §7.4).

K > 2 modalities: each modality m attends to the concatenation of all the others' tokens, with
the others' queries as keys and their values as values:
    m' = m + W_om softmax(Q_m [Q_j]_{j != m}^T / sqrt(d)) [V_j]_{j != m}.
Each pair (m, j) still shares one score block (Q_m Q_j^T for m, its transpose for j), and for
K = 2 this is exactly the formula above. Parameters grow linearly with K.

`locality` sigma > 0 (ours, not the paper's; needs `split_planes`) adds a fixed Gaussian position
prior to the scores of every head, A + bias with bias(p, q) = -|p - q|^2 / (2 sigma^2), where p
and q are the (row, column) positions of two tokens in their plane, in tokens of that level.
Without it, nothing in the scores says where a token is: a branch whose input carries no
content (a missing modality: zero context and pure noise at the first sampling step) sends the
same query from every position and receives the same average of the other branch everywhere,
so it cannot place what the other modality sees. With it, each token attends first to the
other branch's tokens at and around its own position, and the content terms can still move
the attention elsewhere. No parameters are added.

`layout="official"` reproduces the released code (docs/method.md §4.3): the [B, C, N] projections are
reinterpreted as [B, N, heads, d] without a transpose, and the residual adds the normalised
input. It exists only to run official checkpoints (K = 2).
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syncvp.models.unet_blocks import Planes, zero_module

Layout = Literal["fixed", "official"]


class CrossModalAttention(nn.Module):
    """STCA over K >= 2 modalities; called as block(h: {m: Planes}) -> {m: Planes}.

    Args:
        modalities: the branch names, in order.
        channels: channels of the hidden states it links.
        num_heads: heads (channels must be divisible).
        norm_groups: GroupNorm groups.
        split_planes: attend plane by plane (paper) or over the whole sequence.
        normalize: GroupNorm the inputs (paper) or not.
        layout: "fixed" (ours) or "official" (see the module docstring).
        locality: sigma of the Gaussian position prior on the scores, in tokens (0 = none: the
            paper's; > 0 needs `split_planes` and the fixed layout).
    """

    def __init__(self, modalities: Sequence[str], channels: int, *, num_heads: int, norm_groups: int,
                 split_planes: bool = True, normalize: bool = True, layout: Layout = "fixed",
                 locality: float = 0.0):
        super().__init__()
        self.modalities = tuple(modalities)
        if len(self.modalities) < 2 or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"cross-attention needs >= 2 distinct modalities, got {self.modalities}")
        if channels % num_heads:
            raise ValueError(f"{num_heads} heads do not divide {channels} channels")
        if layout == "official" and len(self.modalities) != 2:
            raise ValueError("the official STCA layout exists for two modalities only")
        if locality < 0:
            raise ValueError(f"locality must be >= 0, got {locality}")
        if locality and (not split_planes or layout == "official"):
            raise ValueError("a locality prior needs split_planes and the fixed STCA layout "
                             "(token positions exist only within a plane)")
        self.heads, self.split_planes, self.layout, self.locality = num_heads, split_planes, layout, float(locality)
        self._bias_cache: dict[tuple, Tensor] = {}

        def per_modality(make):
            return nn.ModuleDict({m: make() for m in self.modalities})

        self.norm = per_modality(lambda: nn.GroupNorm(norm_groups, channels) if normalize else nn.Identity())
        self.query = per_modality(lambda: nn.Conv1d(channels, channels, 1))
        self.value = per_modality(lambda: nn.Conv1d(channels, channels, 1))
        out = (lambda: nn.Conv1d(channels, channels, 1)) if layout == "official" else \
            (lambda: zero_module(nn.Conv1d(channels, channels, 1)))
        self.out = per_modality(out)

    def forward(self, h: Mapping[str, Planes]) -> dict[str, Planes]:
        if set(h) != set(self.modalities):
            raise ValueError(f"cross-attention over {self.modalities} got states for {sorted(h)}")
        if not self.split_planes:
            tokens = self.attend({m: h[m].to_latent() for m in self.modalities})
            return {m: Planes.from_latent(tokens[m], h[m].layout) for m in self.modalities}
        groups = len(h[self.modalities[0]].tensors)
        new = {m: [] for m in self.modalities}
        for g in range(groups):
            planes = {m: h[m].tensors[g] for m in self.modalities}  # [n B, C, rows, cols]
            first = planes[self.modalities[0]]
            out = self.attend({m: x.flatten(2) for m, x in planes.items()},
                              self.position_bias(*first.shape[2:], first.device))
            for m in self.modalities:
                new[m].append(out[m].reshape(planes[m].shape))
        return {m: h[m].with_tensors(new[m]) for m in self.modalities}

    def position_bias(self, rows: int, cols: int, device: torch.device) -> Tensor | None:
        """The locality prior of one plane shape, [rows*cols, (K-1)*rows*cols] float32 (the keys
        are the other K-1 modalities' tokens, concatenated), or None without `locality`."""
        if not self.locality:
            return None
        key = (rows, cols, str(device))
        if key not in self._bias_cache:
            r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
            pos = torch.stack([r.flatten(), c.flatten()], dim=1).float()  # [T, 2], row-major like flatten(2)
            bias = -(pos[:, None] - pos[None]).pow(2).sum(-1) / (2 * self.locality**2)  # exact, unlike cdist
            self._bias_cache[key] = bias.repeat(1, len(self.modalities) - 1).to(device)
        return self._bias_cache[key]

    def attend(self, x: Mapping[str, Tensor], bias: Tensor | None = None) -> dict[str, Tensor]:
        """x {m: [N, C, T_m]} -> {m: [N, C, T_m]} (one call = one plane group or whole sequences);
        `bias` [T, (K-1) T] is added to every head's scores (`position_bias`)."""
        normed = {m: self.norm[m](x[m]) for m in self.modalities}
        q = {m: self._heads(_pointwise(self.query[m], normed[m])) for m in self.modalities}
        v = {m: self._heads(_pointwise(self.value[m], normed[m])) for m in self.modalities}
        out = {}
        for m in self.modalities:
            others = [j for j in self.modalities if j != m]
            keys = q[others[0]] if len(others) == 1 else torch.cat([q[j] for j in others], dim=2)
            values = v[others[0]] if len(others) == 1 else torch.cat([v[j] for j in others], dim=2)
            if bias is None:
                a = self._merge(F.scaled_dot_product_attention(q[m], keys, values))
            else:
                a = self._merge(F.scaled_dot_product_attention(q[m], keys, values, attn_mask=bias.to(q[m].dtype)))
            residual = normed[m] if self.layout == "official" else x[m]
            out[m] = residual + self._project_out(m, a)
        return out

    def _heads(self, tokens: Tensor) -> Tensor:
        """Token-major projections [N, T, C] -> [N, heads, T, d] (fixed layout), or the
        channel-major buffer [N, C, T] reinterpreted as [N, T, heads, d] (official layout)."""
        n, t, c = tokens.shape
        d = c // self.heads
        if self.layout == "official":
            tokens = tokens.transpose(1, 2).contiguous().view(n, t, self.heads, d)
            return tokens.transpose(1, 2)
        return tokens.view(n, t, self.heads, d).transpose(1, 2)

    def _merge(self, a: Tensor) -> Tensor:
        """[N, heads, T, d] -> [N, T, C] (fixed), or the official inverse view -> [N, T, C]."""
        n, heads, t, d = a.shape
        merged = a.transpose(1, 2).reshape(n, t, heads * d)
        if self.layout == "official":
            return merged.view(n, heads * d, t).transpose(1, 2)
        return merged

    def _project_out(self, m: str, a: Tensor) -> Tensor:
        """W_o applied to token-major a [N, T, C] -> channel-major [N, C, T]."""
        return F.linear(a, self.out[m].weight.squeeze(-1), self.out[m].bias).transpose(1, 2)


def _pointwise(conv: nn.Conv1d, x: Tensor) -> Tensor:
    """A 1x1 Conv1d applied to channel-major x [N, C, T], returned token-major [N, T, C']."""
    return F.linear(x.transpose(1, 2), conv.weight.squeeze(-1), conv.bias)


class NoCrossAttention(nn.Module):
    """The identity slot of the cross-attention list (where cross-attention is disabled)."""

    def forward(self, h: Mapping[str, Planes]) -> dict[str, Planes]:
        return dict(h)
