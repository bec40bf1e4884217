"""A PNG screenshot of an evaluation's report page, taken with headless Chromium (hand-run, for
the docs; not part of the pipeline or CI).

    python -m scripts.report_screenshot [--report eval/synthetic/report.html]
                                        [--out docs/images/synthetic_report.png] [--size 1400,3000] [--width 700]

Needs `chromium` (Debian: `apt-get install -y chromium`). The page is self-contained, so the
browser runs with networking, sync and updates off, in a new empty profile that is deleted after.
`--width` shrinks the screenshot (area filter) to keep the PNG small; 0 keeps the window's size.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import cv2

from syncvp.io.atomic import atomic_path

FLAGS = (
    "--headless",
    "--no-sandbox",  # Chromium refuses to run as root without it
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise SystemExit("no chromium on PATH: install it (Debian: `apt-get install -y chromium`)")


def screenshot(report: Path, out: Path, size: tuple[int, int], width: int, timeout: float = 120.0) -> Path:
    """Render `report` at `size` (window width, height) into `out`, shrunk to `width` px (0: as is)."""
    if not report.is_file():
        raise SystemExit(f"--report {report} does not exist: run `dvc repro evaluate` first")
    with tempfile.TemporaryDirectory(prefix="report-shot-") as tmp:
        shot = Path(tmp) / "shot.png"
        cmd = [
            chromium(),
            *FLAGS,
            f"--user-data-dir={Path(tmp) / 'profile'}",
            f"--screenshot={shot}",
            f"--window-size={size[0]},{size[1]}",
            report.resolve().as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not shot.is_file():
            raise SystemExit(f"chromium failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        image = cv2.imread(str(shot), cv2.IMREAD_COLOR)
    if width and image.shape[1] > width:
        height = round(image.shape[0] * width / image.shape[1])
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp_out:
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        if not ok:
            raise OSError(f"could not encode {out}")
        tmp_out.write_bytes(buf.tobytes())
    return out


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be WIDTH,HEIGHT in pixels (e.g. 1400,3000), got {text!r}")
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"--size must be positive, got {text!r}")
    return w, h


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", default="eval/synthetic/report.html", type=Path)
    ap.add_argument("--out", default="docs/images/synthetic_report.png", type=Path)
    ap.add_argument("--size", default="1400,3000", type=_size, help="browser window WIDTH,HEIGHT (px)")
    ap.add_argument("--width", default=700, type=int, help="shrink the PNG to this width (0: keep)")
    args = ap.parse_args(argv)
    if args.width < 0:
        ap.error(f"--width must be >= 0, got {args.width}")
    print(screenshot(args.report, args.out, args.size, args.width))


if __name__ == "__main__":
    main()
