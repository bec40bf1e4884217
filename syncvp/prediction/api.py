"""Predict the future of your own multi-modal video: frames in, frames out.

    frames = read_frames("clip/", predictor)            # clip/<modality>/*.png, sorted by name
    future = predict(predictor, frames, 16, trajectories=2, seed=0)
    write_prediction("out/", frames, future)            # out/<m>/traj<k>/<i>.png + prediction.gif

Frames are uint8 [T, H, W, C] per modality (C from the model's autoencoders: 3 = RGB, 1 = gray).
Images are read with OpenCV (BGR converted to RGB; a gray modality may be stored as three equal
channels). Frames of another size are an error unless `resize` names an interpolation: they are
then centre-cropped to the model's aspect ratio and resized (`syncvp.data.transforms`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping

import cv2
import numpy as np
import torch

from syncvp.config.roles import RolePair
from syncvp.data.transforms import center_crop, image_to_model, model_to_image, resize_frames
from syncvp.prediction.rollout import Predictor
from syncvp.seeding import torch_generator
from syncvp.viz import save_gif, save_png, to_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class PredictionInputError(ValueError):
    """Input frames that do not fit the model (names the folder, file or modality)."""


def _read_image(path: Path, channels: int) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PredictionInputError(f"{path}: not a readable image")
    if img.dtype != np.uint8:
        raise PredictionInputError(f"{path}: {img.dtype} pixels; 8-bit images are expected")
    img = img[..., None] if img.ndim == 2 else img[..., :3][..., ::-1]  # BGR(A) -> RGB
    if img.shape[-1] == channels:
        return img
    if channels == 1 and (img == img[..., :1]).all():
        return img[..., :1]  # gray stored as three equal channels
    raise PredictionInputError(
        f"{path}: {img.shape[-1]} channel(s), the model's {path.parent.name!r} autoencoder takes {channels}"
    )


def read_frames(
    folder: str | Path, predictor: Predictor, present: Iterable[str] | None = None, resize: str | None = None
) -> dict[str, np.ndarray]:
    """{m: uint8 [T, H, W, C]} from `folder/<m>/` for every observed modality (T >= context_frames)."""
    folder = Path(folder)
    out = {}
    for m in predictor.modalities if present is None else tuple(present):
        if m not in predictor.modalities:
            raise PredictionInputError(f"{m!r} is not a modality of the model {list(predictor.modalities)}")
        spec = predictor.context_autoencoders[m].spec
        sub = folder / m
        if not sub.is_dir():
            raise PredictionInputError(f"{sub} is missing: put the {m!r} frames there (one image per frame)")
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < predictor.context_frames:
            raise PredictionInputError(
                f"{sub} holds {len(files)} frame(s); the model needs at least {predictor.context_frames}"
            )
        size = tuple(spec.resolution)
        out[m] = np.stack(
            [_fit(_read_image(p, spec.channels)[None], size, resize, p)[0] for p in files[-predictor.context_frames :]]
        )
    return out


def _fit(frames: np.ndarray, size: tuple[int, int], resize: str | None, where: Path) -> np.ndarray:
    if frames.shape[1:3] == size:
        return frames
    if resize is None:
        raise PredictionInputError(
            f"{where}: {frames.shape[1]}x{frames.shape[2]} pixels, the model takes "
            f"{size[0]}x{size[1]}; resize them or pass resize (e.g. area) to centre-crop and resize"
        )
    fitted = resize_frames(center_crop(frames, size[1] / size[0]), size, resize)
    return fitted.reshape(*fitted.shape[:3], frames.shape[3])


@torch.no_grad()
def predict(
    predictor: Predictor, frames: Mapping[str, np.ndarray], future: int, *, trajectories: int = 1, seed: int = 0
) -> dict[str, np.ndarray]:
    """Predict `future` frames of every modality from the observed ones.

    Args:
        frames: {m: uint8 [T, H, W, C]} for the observed modalities (the others start from zeros).
        trajectories: N samples.
        seed: the sampling stream (same seed, same prediction).

    Returns:
        {m: uint8 [N, future, H, W, C]} (rounded from model space).
    """
    context = {m: torch.from_numpy(image_to_model(v)).permute(3, 0, 1, 2)[None] for m, v in frames.items()}
    gen = torch_generator(seed, "predict", device=str(predictor.device))
    out = predictor.rollout(context, future, generator=gen, present=frames.keys(), trajectories=trajectories)
    return {m: model_to_image(v[0].permute(0, 2, 3, 4, 1).float().cpu().numpy(), "round") for m, v in out.items()}


def write_prediction(
    out_dir: str | Path, frames: Mapping[str, np.ndarray], future: Mapping[str, np.ndarray], fps: float = 4.0
) -> list[Path]:
    """`out_dir/<m>/traj<k>/<i>.png` per predicted frame and `prediction.gif`: one column per
    modality, one row per trajectory, the observed frames first (black where unobserved)."""
    out_dir = Path(out_dir)
    written = []
    for m, video in future.items():
        for k, traj in enumerate(video):
            written += [
                save_png(out_dir / m / f"traj{k}" / f"{i:04d}.png", to_rgb(f[None])[0]) for i, f in enumerate(traj)
            ]
    rows = []
    for k in range(next(iter(future.values())).shape[0]):
        cols = []
        for m, video in future.items():
            pred = to_rgb(video[k])
            seen = to_rgb(frames[m]) if m in frames else np.zeros((0, *pred.shape[1:]), np.uint8)
            cols.append(np.concatenate([seen, pred]))
        t = max(len(c) for c in cols)
        cols = [np.concatenate([np.zeros((t - len(c), *c.shape[1:]), np.uint8), c]) for c in cols]
        rows.append(np.concatenate(cols, axis=2))
    written.append(save_gif(out_dir / "prediction.gif", np.concatenate(rows, axis=1), fps=fps, scale=2))
    return written


def predict_folder(
    input_dir: str | Path,
    out_dir: str | Path,
    *,
    model: str | Path,
    autoencoders: Mapping[str, RolePair[str | Path]],
    sampling,
    future: int,
    trajectories: int = 1,
    present: Iterable[str] | None = None,
    seed: int = 0,
    device: str = "cpu",
    resize: str | None = None,
) -> dict[str, np.ndarray]:
    """Files in, files out: load the model, read `input_dir/<m>/`, predict, write to `out_dir`.

    Args:
        model: a joint (or stage-1) diffusion-model file; autoencoders: {m: RolePair of its
            context and future autoencoder files}.
        sampling: the `sampling` params section.

    Returns:
        the predictions {m: uint8 [N, future, H, W, C]}.
    """
    from syncvp.prediction.load import load_predictor

    predictor = load_predictor(model, autoencoders, sampling, device=device, quantize=autoencoders.keys())
    frames = read_frames(input_dir, predictor, present, resize)
    out = predict(predictor, frames, future, trajectories=trajectories, seed=seed)
    write_prediction(out_dir, frames, out)
    return out
