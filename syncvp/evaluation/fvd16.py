"""The real side of the standard FVD (`fvd16`): I3D features of the first 16 frames of every
evaluated ground-truth video, computed once per dataset split and cached.

The cache lives in `<eval>/<dataset>/work/fvd16/<split>-<modality>.npz` (the persistent work
folder, outside any one run's fingerprint), keyed by the md5 of the I3D weight file and of the
clip store, the number of videos and the clip length: a new model or sampler reuses it, a
change of any of those recomputes it (`syncvp.metrics.fvd.cached_features`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from syncvp.evaluation.plan import EvaluationPlan
from syncvp.io.digest import file_md5
from syncvp.metrics.fvd import STANDARD_CLIP, cached_features, first_clip, video_features
from syncvp.metrics.images import ground_truth


def cache_file(plan: EvaluationPlan, modality: str) -> Path:
    return plan.work_dir.parent / "fvd16" / f"{plan.evaluate.split}-{modality}.npz"


def cache_key(plan: EvaluationPlan, modality: str) -> str:
    videos = plan.batches[-1][1] if plan.batches else 0
    parts = {
        "i3d": file_md5(plan.metric_plan.weights["fvd16"]),
        "store": file_md5(plan.store),
        "modality": modality,
        "videos": videos,
        "clip": STANDARD_CLIP,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def fvd16_modalities(plan: EvaluationPlan) -> list[str]:
    """The modalities scored with fvd16."""
    return [m for m in plan.modalities if "fvd16" in plan.metrics_for(m)]


def real_features(plan: EvaluationPlan) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
    """({modality: [videos, D] features}, {modality: read from the cache}) of the real clips."""
    from syncvp.evaluation.batch import load_clips, networks

    out, hits = {}, {}
    for m in fvd16_modalities(plan):

        def compute(m=m) -> np.ndarray:
            _, models = networks(plan)
            device = next(models.i3d.parameters()).device
            rows = []
            for start, stop in plan.batches:
                clips, _ = load_clips(plan, start, stop)
                video = first_clip(ground_truth(clips[m]), STANDARD_CLIP)
                rows.append(video_features(models.i3d, video, STANDARD_CLIP, device=device).numpy())
            return np.concatenate(rows)

        with torch.no_grad():
            out[m], hits[m] = cached_features(cache_file(plan, m), cache_key(plan, m), compute)
    return out, hits
