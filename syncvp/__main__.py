"""Command line: `python -m syncvp <command>`.

    check-params [FILE]   validate params.yaml (default ./params.yaml) and say what fans out
    fanout [FILE]         print the `pipeline:` section implied by `datasets` and `pipeline.train`
    preset NAME [FILE]    print FILE (default params.yaml) with preset NAME merged in (`syncvp/presets/`)
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


def _preset_yaml(name: str, path: str) -> str:
    """The params file `path` with preset `name` merged in, validated strictly."""
    from syncvp import presets
    from syncvp.config import params_from_dict

    merged = presets.apply(read_yaml(path), presets.load(name), f"{path} + preset {name}")
    params_from_dict(merged, f"{path} + preset {name}")
    header = f"# params.yaml with preset `{name}` (syncvp/presets/{name}.yaml) merged in; see README\n"
    return header + yaml.safe_dump(merged, sort_keys=False, default_flow_style=None, width=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syncvp")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("check-params", "validate a params file"), ("fanout", "print the implied pipeline section")):
        p = sub.add_parser(name, help=text)
        p.add_argument("params", nargs="?", default="params.yaml")
    p = sub.add_parser("preset", help="print params with a preset merged in")
    p.add_argument("name", help="preset name (syncvp/presets/<name>.yaml)")
    p.add_argument("params", nargs="?", default="params.yaml")
    args = parser.parse_args(argv)
    try:
        if args.command == "preset":
            print(_preset_yaml(args.name, args.params), end="")
            return 0
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
