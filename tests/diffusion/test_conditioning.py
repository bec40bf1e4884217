"""Conditioning dropout and modality-dropout patterns: per sample, at their configured rates,
from an explicit generator; targets always on the same frames."""

from __future__ import annotations

import math

import pytest
import torch

from syncvp.diffusion.conditioning import (
    apply_presence,
    check_patterns,
    drop_condition,
    independent_patterns,
    keep_condition,
    official_patterns,
    sample_presence,
    split_clip,
)

N = 20000


def within(rate: float, p: float, n: int = N, z: float = 4.5) -> bool:
    return abs(rate - p) <= z * math.sqrt(max(p * (1 - p), 1e-12) / n)


def test_split_clip_keeps_every_modality_on_the_same_frames():
    frames = torch.arange(10.0).reshape(1, 1, 10, 1, 1)
    clip = {"rgb": frames.expand(2, 3, 10, 4, 4), "depth": frames.expand(2, 1, 10, 4, 4) + 100}
    context, future = split_clip(clip, 2, 8)
    assert torch.equal(context["rgb"][0, 0, :, 0, 0], torch.tensor([0.0, 1.0]))
    assert torch.equal(future["rgb"][0, 0, :, 0, 0], torch.arange(2.0, 10.0))
    assert torch.equal(future["depth"][0, 0, :, 0, 0] - 100, future["rgb"][0, 0, :, 0, 0])
    with pytest.raises(ValueError, match="T >= 11"):
        split_clip(clip, 3, 8)


def test_conditioning_dropout_rate_per_sample():
    keep = keep_condition(N, 0.7, torch.Generator().manual_seed(0))
    assert keep.dtype == torch.bool and within(float(keep.float().mean()), 0.7)
    again = keep_condition(N, 0.7, torch.Generator().manual_seed(0))
    assert torch.equal(keep, again)
    cond = torch.randn(6, 2, 5)
    mask = torch.tensor([True, False, True, True, False, False])
    out = drop_condition(cond, mask)
    assert torch.equal(out[mask], cond[mask]) and bool((out[~mask] == 0).all())
    with pytest.raises(ValueError, match="cond_prob"):
        keep_condition(3, 1.5, torch.Generator())


PAPER_LIKE = {frozenset({"rgb", "depth"}): 0.5, frozenset({"rgb"}): 0.2, frozenset({"depth"}): 0.2, frozenset(): 0.1}


def test_each_pattern_occurs_at_its_configured_rate():
    present = sample_presence(N, PAPER_LIKE, ["rgb", "depth"], torch.Generator().manual_seed(1))
    r, d = present["rgb"], present["depth"]
    rates = {
        frozenset({"rgb", "depth"}): (r & d),
        frozenset({"rgb"}): (r & ~d),
        frozenset({"depth"}): (~r & d),
        frozenset(): (~r & ~d),
    }
    for key, p in PAPER_LIKE.items():
        assert within(float(rates[key].float().mean()), p), (sorted(key), float(rates[key].float().mean()))


def test_three_modalities_and_zero_probability_patterns():
    patterns = independent_patterns(["a", "b", "c"], 0.6)
    assert math.isclose(sum(patterns.values()), 1.0) and math.isclose(patterns[frozenset("ab")], 0.6 * 0.6 * 0.4)
    present = sample_presence(N, patterns, ["a", "b", "c"], torch.Generator().manual_seed(2))
    for key, p in patterns.items():
        hit = torch.ones(N, dtype=torch.bool)
        for m in "abc":
            hit &= present[m] if m in key else ~present[m]
        assert within(float(hit.float().mean()), p)
    official = official_patterns(["rgb", "depth"], 0.7)
    assert official[frozenset()] == 0.0
    assert math.isclose(official[frozenset({"rgb"})], 0.30) and math.isclose(official[frozenset({"depth"})], 0.21)
    drawn = sample_presence(N, official, ["rgb", "depth"], torch.Generator().manual_seed(3))
    assert not bool((~drawn["rgb"] & ~drawn["depth"]).any())


def test_patterns_are_canonical_whatever_the_mapping_order():
    reordered = dict(reversed(list(PAPER_LIKE.items())))
    a = sample_presence(500, PAPER_LIKE, ["rgb", "depth"], torch.Generator().manual_seed(4))
    b = sample_presence(500, reordered, ["rgb", "depth"], torch.Generator().manual_seed(4))
    assert all(torch.equal(a[m], b[m]) for m in a)


def test_apply_presence_zeroes_missing_modalities_per_sample():
    cond = {"rgb": torch.randn(4, 2, 3), "depth": torch.randn(4, 2, 3)}
    present = {"rgb": torch.tensor([True, False, True, False]), "depth": torch.tensor([True, True, False, False])}
    out = apply_presence(cond, present)
    for m in cond:
        assert torch.equal(out[m][present[m]], cond[m][present[m]])
        assert bool((out[m][~present[m]] == 0).all())


@pytest.mark.parametrize(
    "patterns, words",
    [
        ({frozenset({"rgb"}): 0.5}, "sum to 1"),
        ({frozenset({"rgb", "flow"}): 1.0}, "unknown modalities"),
        ({frozenset({"rgb"}): 1.5, frozenset(): -0.5}, "probability -0.5"),
    ],
)
def test_bad_patterns_fail(patterns, words):
    with pytest.raises(ValueError, match=words):
        check_patterns(patterns, ["rgb", "depth"])
