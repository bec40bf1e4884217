"""Predict the future of your own multi-modal video: frames in, frames out.

    frames = read_frames("clip/", predictor)            # clip/<modality>/*.png, sorted by name
    future = predict(predictor, frames, 16, trajectories=2, seed=0)
    write_prediction("out/", frames, future)            # out/<m>/traj<k>/<i>.png, format.json, prediction.gif
                                                        # (+ spread.npz, spread.png with N >= 2)

Frames are uint8 [T, H, W, C] per modality (C from the model's autoencoders: 3 = RGB, 1 = gray).
Images are read with OpenCV (BGR converted to RGB; a gray modality may be stored as three equal
channels, or as a 1-channel 16-bit PNG such as a written prediction, read at 8 bits: v / 257
rounded). Frames of another size are an error unless `resize` names an interpolation: they are
then centre-cropped to the model's aspect ratio and resized (`syncvp.data.transforms`).

Predicted frames are written as `syncvp.prediction.formats` says: RGB as 8-bit RGB PNGs, class
maps as 8-bit class ids, every other 1-channel modality (depth, fields) as 16-bit PNGs, with
`format.json` in each modality folder giving the map from PNG values to model space and, when
the model's clip store is known, to physical units.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import cv2
import numpy as np
import torch

from syncvp.config.roles import RolePair
from syncvp.data.transforms import center_crop, image_to_model, model_to_image, resize_frames
from syncvp.io.atomic import atomic_dir
from syncvp.prediction import formats
from syncvp.prediction.rollout import Predictor
from syncvp.prediction.spread import write_spread
from syncvp.progress import ProgressFn, no_progress
from syncvp.seeding import torch_generator
from syncvp.viz import save_gif, to_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
RESIZE_MODES = ("area", "bilinear", "bicubic", "nearest")


class PredictionInputError(ValueError):
    """Input frames that do not fit the model (names the folder, file or modality)."""


def _read_image(path: Path, channels: int) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise PredictionInputError(f"{path}: not a readable image")
    if img.dtype == np.uint16 and img.ndim == 2 and channels == 1:
        img = np.round(img / 257.0).astype(np.uint8)  # a 16-bit prediction (`formats`) read back at 8 bits
    if img.dtype != np.uint8:
        raise PredictionInputError(
            f"{path}: {img.dtype} pixels with {1 if img.ndim == 2 else img.shape[-1]} channel(s); 8-bit images "
            f"(or 16-bit 1-channel ones) are expected"
        )
    img = img[..., None] if img.ndim == 2 else img[..., :3][..., ::-1]  # BGR(A) -> RGB
    if img.shape[-1] == channels:
        return img
    if channels == 1 and (img == img[..., :1]).all():
        return img[..., :1]  # gray stored as three equal channels
    raise PredictionInputError(
        f"{path}: {img.shape[-1]} channel(s), the model's {path.parent.name!r} autoencoder takes {channels}"
    )


def read_frames(
    folder: str | Path,
    predictor: Predictor,
    present: Iterable[str] | None = None,
    resize: str | None = None,
    every: bool = False,
) -> dict[str, np.ndarray]:
    """{m: uint8 [T, H, W, C]} from `folder/<m>/` for every observed modality: its last
    `context_frames` frames, or with `every` all of them (modality completion; every modality
    the same number)."""
    folder = Path(folder)
    out = {}
    for m in predictor.modalities if present is None else tuple(present):
        if m not in predictor.modalities:
            raise PredictionInputError(f"{m!r} is not a modality of the model {list(predictor.modalities)}")
        spec = predictor.context_autoencoders[m].spec
        sub = folder / m
        if not sub.is_dir():
            raise PredictionInputError(
                f"{sub} is missing: put the {m!r} frames there (one image per frame), or leave {m} out of "
                f"--present to predict it unobserved"
            )
        files = sorted(p for p in sub.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if every:
            if not files:
                raise PredictionInputError(f"{sub} holds no frames (png, jpg, bmp or tif images)")
            counts = {len(v) for v in out.values()}
            if counts and counts != {len(files)}:
                first = next(iter(out))
                raise PredictionInputError(
                    f"{sub} holds {len(files)} frame(s), {folder / first} {counts.pop()}: the given modalities "
                    f"must cover the same frames"
                )
            size = tuple(spec.resolution)
            out[m] = np.stack([_fit(_read_image(p, spec.channels)[None], size, resize, p)[0] for p in files])
            continue
        if len(files) < predictor.context_frames:
            raise PredictionInputError(
                f"{sub} holds {len(files)} frame(s); the model needs at least {predictor.context_frames} "
                f"(the last ones are used): add frames to that folder of --input"
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
            f'{size[0]}x{size[1]}; resize them, or pass --resize area (resize="area" from Python; '
            f"also {', '.join(RESIZE_MODES[1:])}) to centre-crop and resize"
        )
    fitted = resize_frames(center_crop(frames, size[1] / size[0]), size, resize)
    return fitted.reshape(*fitted.shape[:3], frames.shape[3])


@torch.no_grad()
def predict_model_space(
    predictor: Predictor,
    frames: Mapping[str, np.ndarray],
    future: int,
    *,
    trajectories: int = 1,
    seed: int = 0,
    progress: ProgressFn = no_progress,
) -> dict[str, np.ndarray]:
    """`predict` before rounding: {m: float32 [N, future, H, W, C]} in model space [-1, 1]
    (`progress`: the rollout's per-step events, `Predictor.rollout`'s `step_progress`)."""
    context = {m: torch.from_numpy(image_to_model(v)).permute(3, 0, 1, 2)[None] for m, v in frames.items()}
    gen = torch_generator(seed, "predict", device=str(predictor.device))
    out = predictor.rollout(
        context, future, generator=gen, present=frames.keys(), trajectories=trajectories, step_progress=progress
    )
    return {m: v[0].permute(0, 2, 3, 4, 1).float().clamp(-1, 1).cpu().numpy() for m, v in out.items()}


def predict(
    predictor: Predictor,
    frames: Mapping[str, np.ndarray],
    future: int,
    *,
    trajectories: int = 1,
    seed: int = 0,
    progress: ProgressFn = no_progress,
) -> dict[str, np.ndarray]:
    """Predict `future` frames of every modality from the observed ones.

    Args:
        frames: {m: uint8 [T, H, W, C]} for the observed modalities (the others start from zeros).
        trajectories: N samples.
        seed: the sampling stream (same seed, same prediction).
        progress: receives a `ProgressEvent` after every sampling step of every chunk.

    Returns:
        {m: uint8 [N, future, H, W, C]} (rounded from model space).
    """
    out = predict_model_space(predictor, frames, future, trajectories=trajectories, seed=seed, progress=progress)
    return {m: model_to_image(v, "round") for m, v in out.items()}


def write_prediction(
    out_dir: str | Path,
    frames: Mapping[str, np.ndarray],
    future: Mapping[str, np.ndarray],
    fps: float = 4.0,
    frame_formats: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Path]:
    """`out_dir/<m>/traj<k>/<i>.png` per predicted frame, `out_dir/<m>/format.json` and
    `prediction.gif`: one column per modality, one row per trajectory, the observed frames first
    (black where unobserved); with N >= 2 trajectories also `spread.npz` and `spread.png`, the
    per-pixel spread over trajectories (`syncvp.prediction.spread`).

    Args:
        future: {m: [N, T, H, W, C]}, float32 in model space (`predict_model_space`) or uint8
            (`predict`).
        frame_formats: {m: `syncvp.prediction.formats.frame_format`}; default: from the channels
            alone (no physical units).
    """
    out_dir = Path(out_dir)
    future = {m: image_to_model(v) if v.dtype == np.uint8 else v for m, v in future.items()}
    written = []
    fmts = {m: (frame_formats or {}).get(m) or formats.frame_format(m, v.shape[-1]) for m, v in future.items()}
    for m, video in future.items():
        fmt = fmts[m]
        values = formats.png_values(video, fmt)
        for k, traj in enumerate(values):
            written += [formats.write_png(out_dir / m / f"traj{k}" / f"{i:04d}.png", f) for i, f in enumerate(traj)]
        written.append(formats.write_format(out_dir / m, fmt))
    rows = []
    for k in range(next(iter(future.values())).shape[0]):
        cols = []
        for m, video in future.items():
            pred = to_rgb(model_to_image(video[k], "round"))
            seen = to_rgb(frames[m]) if m in frames else np.zeros((0, *pred.shape[1:]), np.uint8)
            cols.append(np.concatenate([seen, pred]))
        t = max(len(c) for c in cols)
        cols = [np.concatenate([np.zeros((t - len(c), *c.shape[1:]), np.uint8), c]) for c in cols]
        rows.append(np.concatenate(cols, axis=2))
    written.append(save_gif(out_dir / "prediction.gif", np.concatenate(rows, axis=1), fps=fps, scale=2))
    if len(rows) >= 2:
        written += write_spread(out_dir, future, fmts)
    return written


def check_out_dir(out_dir: str | Path) -> None:
    """`out_dir` must be new, empty, or an earlier prediction (it is replaced as a whole)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise PredictionInputError(f"--out {out_dir} is a file: pass a new folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "prediction.gif").is_file():
        raise PredictionInputError(
            f"--out {out_dir} holds files that are not a prediction (it would be replaced): pass a new folder"
        )


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
    frame_formats: Mapping[str, Mapping[str, Any]] | None = None,
    progress: ProgressFn = no_progress,
    log: Callable[[str], Any] = lambda line: None,
    compile: bool = False,
    channels_last: bool = False,
    cuda_graphs: bool = False,
    warn: Callable[[str], Any] | None = None,
) -> dict[str, np.ndarray]:
    """Files in, files out: load the model, read `input_dir/<m>/`, predict, write to `out_dir`
    (written to a temporary folder, then renamed: an earlier prediction there is replaced whole,
    any other non-empty folder is refused before anything is loaded).

    Args:
        model: a joint (or stage-1) diffusion-model file; autoencoders: {m: RolePair of its
            context and future autoencoder files}.
        sampling: the `sampling` params section.
        frame_formats: how each modality's PNGs are written (`write_prediction`).
        progress: a `ProgressEvent` after every sampling step (`Predictor.rollout`'s `step_progress`).
        log: receives a line for each thing loaded or read.
        compile, channels_last, cuda_graphs: the speed options of the sampler's denoiser (params
            `run`; `load_predictor`); `warn` receives the one warning of a compilation or CUDA
            graph capture that fails (the denoiser then runs eager / plainly).

    Returns:
        the predictions {m: uint8 [N, future, H, W, C]}.
    """
    from syncvp.prediction.load import load_predictor

    if resize is not None and resize not in RESIZE_MODES:
        raise PredictionInputError(f"--resize {resize!r}: expected one of {', '.join(RESIZE_MODES)}")
    check_out_dir(out_dir)
    log(f"loading {model} on {device}")
    for m, pair in autoencoders.items():
        same = Path(pair.context) == Path(pair.future)
        log(
            f"loading the {m} autoencoder {pair.future}"
            if same
            else f"loading the {m} autoencoders {pair.context} (context), {pair.future} (future)"
        )
    predictor = load_predictor(
        model,
        autoencoders,
        sampling,
        device=device,
        compile=compile,
        channels_last=channels_last,
        cuda_graphs=cuda_graphs,
        warn=warn,
    )
    fmts = {
        m: (frame_formats or {}).get(m) or formats.frame_format(m, predictor.future_autoencoders[m].spec.channels)
        for m in predictor.modalities
    }
    # 8-bit modalities snap to their PNG levels after each chunk (as written and read back);
    # 16-bit ones keep the model's precision
    predictor = dataclasses.replace(predictor, quantize=frozenset(m for m in fmts if fmts[m]["dtype"] == "uint8"))
    frames = read_frames(input_dir, predictor, present, resize)
    chunks = math.ceil(future / predictor.future_frames)
    log(
        f"read {', '.join(f'{m} {len(v)}' for m, v in frames.items())} frames from {input_dir}; predicting "
        f"{future} frames x {trajectories} trajectory(ies) in {chunks} chunk(s) of {predictor.future_frames}, "
        f"{sampling.method} {sampling.steps} step(s) each"
    )
    out = predict_model_space(predictor, frames, future, trajectories=trajectories, seed=seed, progress=progress)
    with atomic_dir(out_dir) as tmp:
        write_prediction(tmp, frames, out, frame_formats=fmts)
    return {m: model_to_image(v, "round") for m, v in out.items()}


def complete_folder(
    input_dir: str | Path,
    out_dir: str | Path,
    *,
    model: str | Path,
    autoencoders: Mapping[str, RolePair[str | Path]],
    sampling,
    given: Iterable[str],
    trajectories: int = 1,
    seed: int = 0,
    device: str = "cpu",
    resize: str | None = None,
    frame_formats: Mapping[str, Mapping[str, Any]] | None = None,
    progress: ProgressFn = no_progress,
    log: Callable[[str], Any] = lambda line: None,
    compile: bool = False,
    channels_last: bool = False,
    cuda_graphs: bool = False,
    warn: Callable[[str], Any] | None = None,
) -> dict[str, np.ndarray]:
    """Modality completion, files in, files out: every frame of the `given` modalities in
    `input_dir/<m>/`, the joint model samples the other modalities for the same frames
    (`Predictor.complete`, with the `sampling` section's completion, completion_steps and
    completion_resample). Writes `out_dir/<m>/traj<k>/<i>.png` (frame i of the input) and
    format.json per completed modality, `prediction.gif` (the completed modalities),
    `completion.gif` (the given modalities next to them) and, with N >= 2, `spread.npz` /
    `spread.png`; to a temporary folder, then renamed (as `predict_folder`). `compile`,
    `channels_last`, `cuda_graphs` and `warn` as in `predict_folder`.

    Returns:
        the completions {m: uint8 [N, T, H, W, C]}.
    """
    from syncvp.prediction.load import completion_options, load_predictor

    given = list(dict.fromkeys(given))
    if resize is not None and resize not in RESIZE_MODES:
        raise PredictionInputError(f"--resize {resize!r}: expected one of {', '.join(RESIZE_MODES)}")
    check_out_dir(out_dir)
    log(f"loading {model} on {device}")
    predictor = load_predictor(
        model,
        autoencoders,
        sampling,
        device=device,
        compile=compile,
        channels_last=channels_last,
        cuda_graphs=cuda_graphs,
        warn=warn,
    )
    if not predictor.joint:
        raise PredictionInputError(f"{model} is a stage-1 model: completing a modality needs the joint model")
    missing = [m for m in predictor.modalities if m not in given]
    unknown = [m for m in given if m not in predictor.modalities]
    if unknown or not given or not missing:
        raise PredictionInputError(
            f"--present {','.join(given)}: name some but not all of the model's modalities "
            f"({', '.join(predictor.modalities)}), e.g. --present {predictor.modalities[0]}"
        )
    fmts = {
        m: (frame_formats or {}).get(m) or formats.frame_format(m, predictor.future_autoencoders[m].spec.channels)
        for m in predictor.modalities
    }
    predictor = dataclasses.replace(predictor, quantize=frozenset(m for m in fmts if fmts[m]["dtype"] == "uint8"))
    frames = read_frames(input_dir, predictor, given, resize, every=True)
    total = len(next(iter(frames.values())))
    steps = sampling.completion_steps or sampling.steps
    log(
        f"read {total} frames of {', '.join(given)} from {input_dir}; completing {', '.join(missing)} x "
        f"{trajectories} trajectory(ies) in chunks of {predictor.future_frames}, {sampling.method} {steps} "
        f"step(s) each ({sampling.completion}, resample {sampling.completion_resample})"
    )
    video = {m: torch.from_numpy(image_to_model(v)).permute(3, 0, 1, 2)[None] for m, v in frames.items()}
    gen = torch_generator(seed, "complete", device=str(predictor.device))
    out = predictor.complete(
        video, generator=gen, trajectories=trajectories, progress=progress, **completion_options(predictor, sampling)
    )
    done = {m: v[0].permute(0, 2, 3, 4, 1).float().clamp(-1, 1).cpu().numpy() for m, v in out.items()}
    with atomic_dir(out_dir) as tmp:
        write_prediction(tmp, {}, done, frame_formats=fmts)
        rows = []
        for k in range(trajectories):
            cols = [to_rgb(frames[m]) for m in given] + [to_rgb(model_to_image(done[m][k], "round")) for m in missing]
            rows.append(np.concatenate(cols, axis=2))
        save_gif(Path(tmp) / "completion.gif", np.concatenate(rows, axis=1), fps=4.0, scale=2)
    return {m: model_to_image(v, "round") for m, v in done.items()}
