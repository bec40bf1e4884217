"""Imports run one way: stages -> pipelines -> syncvp; inside syncvp, models and diffusion are
independent and config stays light."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(REPO)} imports {name}")
    return bad


def test_library_imports_no_orchestration():
    assert offenders("syncvp", ("prefect", "dvc", "pipelines", "stages")) == []


def test_pipelines_never_import_stages():
    assert offenders("pipelines", ("stages",)) == []


def test_models_and_diffusion_are_independent():
    assert offenders("syncvp/models", ("syncvp.diffusion", "syncvp.training", "syncvp.prediction")) == []
    assert offenders("syncvp/diffusion", ("syncvp.models", "syncvp.training")) == []


def test_config_is_light():
    assert offenders("syncvp/config", ("torch", "numpy", "xarray", "syncvp.data", "syncvp.models")) == []


def test_stages_only_use_pipelines_and_config():
    bad = [o for o in offenders("stages", ("syncvp",)) if "syncvp.config" not in o]
    assert bad == []
