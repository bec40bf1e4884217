"""A figure of the evaluation samples side by side: ground truth, the joint model, the stage-1
models and the references, per modality, with the end of the observed context marked (hand-run,
for reports).

    python -m scripts.sample_figure [--eval eval/synthetic] [--params params.yaml] [--dataset synthetic]
                                    [--videos 2] [--out docs/images/synthetic_samples.png]

Reads the labelled sample grids the `evaluate` stage writes (`samples/<setting>.png`: per video
and modality a ground-truth row above a prediction row, first trajectory; `syncvp.figures.GridLayout`
says where each row sits) for the settings `all` (joint model), `single-all` (stage-1 models),
`copy_last` and `flow` (the references) and the completions `complete-<m>` (the other modalities
sampled for every frame of m; shown only on their rows) when present, cuts the rows out with their headers,
colour bars and the red context marker, and stacks them under the frame header with the source
named on the left.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from syncvp import figures, viz
from syncvp.config import load_params

SOURCES = (("joint model", "all"), ("single models", "single-all"), ("copy-last", "copy_last"), ("flow", "flow"))
COMPLETIONS = "complete-"  # settings complete-<m>: named "<m> given", shown on the other modalities' rows
NAME_W, GAP = 110, 2  # the source-name column and the white gap between rows (px)


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{path} does not exist or is not an image: run `dvc repro evaluate` first")
    return image[..., ::-1]


def _strip(image: np.ndarray, name: str) -> np.ndarray:
    """The image with a white column on the left naming its source."""
    left = np.full((image.shape[0], NAME_W, 3), 255, np.uint8)
    figures.put_text(left, name, 4, image.shape[0] // 2 + 5)
    return np.concatenate([left, image], axis=1)


def figure(
    eval_dir: Path,
    modalities: tuple[str, ...],
    size: tuple[int, int],
    context: int,
    frames: int,
    videos: int,
    out: Path,
) -> Path:
    """Stack the rows of `videos` sample videos of every available source into one PNG at `out`."""
    sources = list(SOURCES) + [(f"{m} given", f"{COMPLETIONS}{m}") for m in modalities]
    grids = {
        name: _read(eval_dir / "samples" / f"{label}.png")
        for name, label in sources
        if (eval_dir / "samples" / f"{label}.png").is_file()
    }
    if "joint model" not in grids:
        raise SystemExit(f"{eval_dir}/samples/all.png is missing: run `dvc repro evaluate` first")
    scale = figures.display_scale(size[0])
    tile = (size[0] * scale, size[1] * scale)
    layouts = {name: figures.GridLayout.of_image(g.shape, tile, frames, context) for name, g in grids.items()}
    per_video = 2 * len(modalities)
    have = layouts["joint model"].rows // per_video
    if not 1 <= videos <= have:
        raise SystemExit(f"--videos {videos}: the sample grids hold {have} videos (evaluate.samples); pass 1..{have}")

    def row(name: str, i: int) -> np.ndarray:
        lay = layouts[name]
        return grids[name][lay.row_y(i) : lay.row_y(i) + lay.tile_h]

    joint = layouts["joint model"]
    head = grids["joint model"][joint.top - joint.head_h : joint.top]
    strips = [_strip(head, "")]
    for v in range(videos):
        for k in range(len(modalities)):
            base = v * per_video + 2 * k
            strips.append(_strip(row("joint model", base), ""))
            shown = [name for name in grids if name != f"{modalities[k]} given"]  # a given modality is its GT
            strips += [_strip(row(name, base + 1), name) for name in shown]
    width = strips[0].shape[1]
    gap = np.full((GAP, width, 3), 255, np.uint8)
    title = np.full((22, width, 3), 255, np.uint8)
    figures.put_text(
        title, f"{context} observed frames | red line | predicted frames (first trajectory of each source)", 4, 16
    )
    body = [title] + [part for s in strips for part in (s, gap)]
    return viz.save_png(out, np.concatenate(body, axis=0))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--eval", default=None, help="the dataset's evaluation folder (default: paths.eval/<dataset>)")
    ap.add_argument("--videos", type=int, default=2)
    ap.add_argument("--out", default="docs/images/synthetic_samples.png")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    ds = params.datasets[args.dataset]
    eval_dir = Path(args.eval) if args.eval else params.paths.eval_dir(args.dataset)
    frames = ds.context_frames + ds.rollout_frames
    print(figure(eval_dir, ds.modalities, tuple(ds.resolution), ds.context_frames, frames, args.videos, Path(args.out)))


if __name__ == "__main__":
    main()
