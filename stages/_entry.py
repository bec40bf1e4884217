"""The shared stage runner: parse -> load and validate params -> call one flow -> exit code.

Params are validated before Prefect (or torch) is even imported, so a bad params.yaml fails in
well under a second, names the key, and leaves nothing behind.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from syncvp.config import Params, ParamsError, load_params

EXIT_PARAMS, EXIT_SERVER = 2, 3


@dataclass(frozen=True)
class StageSpec:
    """What a DVC stage needs.

    Attributes:
        name: the stage name in dvc.yaml (also the flow's name).
        fanout: the `pipeline` key listing this stage's items (a dataset or unit per DVC item).
        sections: item -> the dotted params keys the stage reads; dvc.yaml's `params:` for the
            stage must list exactly these (tests/test_params_contract.py).
        flow: "module:function" of the Prefect flow.
        arguments: (params view, item) -> the flow's keyword arguments. The view only exposes
            the declared sections, so the declaration cannot drift from what is read.
    """

    name: str
    fanout: str
    sections: Callable[[str], tuple[str, ...]]
    flow: str
    arguments: Callable[["SectionView", str], dict[str, Any]]


class SectionView:
    """Read access to the declared sections of `Params`, and nothing else."""

    def __init__(self, params: Params, sections: tuple[str, ...]):
        self._params, self._sections = params, sections

    def __call__(self, key: str) -> Any:
        if not any(key == s or key.startswith(s + ".") for s in self._sections):
            raise KeyError(f"the stage reads {key!r} but declares only {list(self._sections)}")
        return self._params.section(key)


def resolve(spec: StageSpec, params: Params, item: str) -> dict[str, Any]:
    """Check the item is one of the stage's and build the flow's arguments."""
    items = getattr(params.pipeline, spec.fanout)
    if item not in items:
        raise ParamsError(f"{spec.name}: {item!r} is not listed in pipeline.{spec.fanout} ({list(items)})")
    return spec.arguments(SectionView(params, spec.sections(item)), item)


def _check_server() -> None:
    url = os.environ.get("PREFECT_API_URL")
    if url:
        from pipelines.server import healthy

        if not healthy(url):
            print(f"error: PREFECT_API_URL={url} but no Prefect server answers; start one with `make ui` "
                  "or unset PREFECT_API_URL to run in ephemeral mode", file=sys.stderr)
            sys.exit(EXIT_SERVER)


def run(spec: StageSpec, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m stages.{spec.name}")
    parser.add_argument("item", help=f"one entry of pipeline.{spec.fanout}")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(argv)
    try:
        kwargs = resolve(spec, load_params(args.params), args.item)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PARAMS
    import pipelines  # noqa: F401  (Prefect environment defaults, before prefect is imported)

    _check_server()
    from prefect import tags

    module, name = spec.flow.split(":")
    flow = getattr(importlib.import_module(module), name)
    run_name = os.environ.get("DVC_STAGE") or f"{spec.name}@{args.item}"
    if os.environ.get("DVC_EXP_NAME"):
        run_name += f" [{os.environ['DVC_EXP_NAME']}]"
    with tags("dvc", f"stage:{spec.name}", f"item:{args.item}"):
        flow.with_options(flow_run_name=run_name)(**kwargs)
    return 0
