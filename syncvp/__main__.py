"""Command line: `python -m syncvp <command>`.

    check-params [FILE]   validate params.yaml (default ./params.yaml) and say what fans out
    fanout [FILE]         print the `pipeline:` section implied by `datasets` and `pipeline.train`
"""

from __future__ import annotations

import argparse
import sys

import yaml

from syncvp.config import DatasetConfig, ParamsError, PathsConfig, load_params
from syncvp.config.loader import build, read_yaml
from syncvp.config.pipeline import expected_pipeline


def _fanout_yaml(path: str) -> str:
    """The pipeline section implied by `datasets`, `paths` and `pipeline.train` in `path`
    (works while the current `pipeline` section is wrong)."""
    data = read_yaml(path)
    datasets = build(dict[str, DatasetConfig], data.get("datasets"), "datasets", path)
    paths = build(PathsConfig, data.get("paths"), "paths", path)
    train = tuple(data.get("pipeline", {}).get("train", []))
    section = expected_pipeline(datasets, paths, tuple(t for t in train if t in datasets))
    return yaml.safe_dump({"pipeline": section}, sort_keys=False, default_flow_style=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syncvp")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("check-params", "validate a params file"), ("fanout", "print the implied pipeline section")):
        p = sub.add_parser(name, help=text)
        p.add_argument("params", nargs="?", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        if args.command == "fanout":
            print(_fanout_yaml(args.params), end="")
            return 0
        params = load_params(args.params)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.params}: OK")
    for key in ("synthesize", "download_era5", "pseudo_depth", "prepare", "train"):
        print(f"  {key:<14} {', '.join(getattr(params.pipeline, key)) or '-'}")  # dicts list their keys
    return 0


if __name__ == "__main__":
    sys.exit(main())
