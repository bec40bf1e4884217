"""Command line: `python -m syncvp <command>`.

    check-params [FILE]   validate params.yaml (default ./params.yaml) and say what fans out
    fanout [FILE]         print the `pipeline:` section implied by `datasets` and `pipeline.train`
"""

from __future__ import annotations

import argparse
import sys

import yaml

from syncvp.config import ParamsError, load_params
from syncvp.config.loader import read_yaml
from syncvp.config.pipeline import expected_units


def _fanout_yaml(path: str) -> str:
    """The pipeline section for the datasets in `path` (works even when the current one is wrong)."""
    data = read_yaml(path)
    datasets = data.get("datasets", {})
    kinds = {n: d.get("source", {}).get("kind", "") for n, d in datasets.items()}
    train = list(data.get("pipeline", {}).get("train", []))
    autoencoders, single = expected_units(tuple(train), {n: tuple(d.get("modalities", ())) for n, d in datasets.items()})
    section = {"synthesize": [n for n, k in kinds.items() if k.startswith("synthetic")],
               "download_era5": [n for n, k in kinds.items() if k == "era5"],
               "pseudo_depth": [n for n, d in datasets.items() if d.get("pseudo_depth") is not None],
               "prepare": list(datasets), "train": train, "autoencoders": autoencoders, "single": single}
    return yaml.safe_dump({"pipeline": section}, sort_keys=False, default_flow_style=None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syncvp")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("check-params", "validate a params file"), ("fanout", "print the implied pipeline section")):
        p = sub.add_parser(name, help=text)
        p.add_argument("params", nargs="?", default="params.yaml")
    args = parser.parse_args(argv)
    if args.command == "fanout":
        print(_fanout_yaml(args.params), end="")
        return 0
    try:
        params = load_params(args.params)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.params}: OK")
    for key in ("synthesize", "download_era5", "pseudo_depth", "prepare", "train"):
        print(f"  {key:<14} {', '.join(getattr(params.pipeline, key)) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
