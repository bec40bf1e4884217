"""A labelled figure of the evaluation samples: ground truth, the joint model and the stage-1
models, per modality, with the end of the observed context marked (hand-run, for reports).

    python -m scripts.sample_figure [--eval eval/synthetic] [--params params.yaml] [--dataset synthetic]
                                    [--videos 2] [--out docs/images/synthetic_samples.png]

Reads the sample grids the `evaluate` stage writes (`samples/<setting>.png`: per video and
modality a ground-truth row above a prediction row, first trajectory) for the settings `all`
(joint model), `single-all` (stage-1 models), `copy_last` and `flow` (the references) when present,
and lays them out with row labels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from syncvp.config import load_params

PAD, SCALE = 1, 2  # syncvp.viz.grid(rows, pad=1, scale=2) as written by the evaluate stage


def _rows(image: np.ndarray, height: int) -> list[np.ndarray]:
    """Split a sample grid into its rows of frames (gaps removed from the top and bottom)."""
    step, pad = (height + PAD) * SCALE, PAD * SCALE
    return [image[pad + i * step : pad + i * step + height * SCALE] for i in range((image.shape[0] - pad) // step)]


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{path} does not exist or is not an image: run `dvc repro evaluate` first")
    return image[..., ::-1]


def figure(eval_dir: Path, modalities: tuple[str, ...], height: int, context: int, videos: int, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = [("joint", "all"), ("single", "single-all"), ("copy-last", "copy_last"), ("flow", "flow")]
    grids = {
        name: _rows(_read(eval_dir / "samples" / f"{label}.png"), height)
        for name, label in sources
        if (eval_dir / "samples" / f"{label}.png").is_file()
    }
    if "joint" not in grids:
        raise SystemExit(f"{eval_dir}/samples/all.png is missing: run `dvc repro evaluate` first")
    per_video = 2 * len(modalities)
    rows, labels = [], []
    for v in range(videos):
        for k, m in enumerate(modalities):
            base = v * per_video + 2 * k
            rows.append(grids["joint"][base])
            labels.append(f"video {v + 1}\n{m}: ground truth")
            for name, grid in grids.items():
                rows.append(grid[base + 1])
                labels.append(f"{m}: {name}" + (" model" if name in ("joint", "single") else ""))
    width = rows[0].shape[1]
    fig, axes = plt.subplots(
        len(rows), 1, figsize=(width / 80 + 1.6, len(rows) * rows[0].shape[0] / 80 + 0.6), dpi=100, squeeze=False
    )
    frame_w = (height + PAD) * SCALE
    for ax, row, label in zip(axes[:, 0], rows, labels):
        ax.imshow(row)
        ax.axvline(context * frame_w + PAD, color="red", linewidth=2)
        ax.set_yticks([])
        ax.set_xticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    axes[0, 0].set_title(
        f"{context} observed frames | red line | predicted frames (first trajectory of each model)", fontsize=9
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


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
    print(figure(eval_dir, ds.modalities, ds.resolution[0], ds.context_frames, args.videos, Path(args.out)))


if __name__ == "__main__":
    main()
