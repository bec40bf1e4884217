"""Imports run one way: stages -> pipelines -> syncvp; inside syncvp, models and diffusion are
independent, config stays light, and the two trainer families share a core without importing
each other."""

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
            names |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import module`
    return names


def offenders(package: str, forbidden: tuple[str, ...]) -> list[str]:
    """"<file> imports <name>" for each import of a `forbidden` module under `package` (a folder or a module)."""
    root = REPO / package
    bad = []
    for path in [root.with_suffix(".py")] if root.with_suffix(".py").is_file() else sorted(root.rglob("*.py")):
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


# The training package: a generic core (loop, state, callbacks, records, data streams, optimizers,
# distribution) and two families on top of it. Every module of syncvp/training is in exactly one.
TRAINING_CORE = ("callbacks", "data", "distributed", "fastpath", "loop", "optim", "records", "seeded_init", "state")
TRAINING_FAMILIES = {
    "autoencoder": ("autoencoder", "autoencoder_job", "autoencoder_train", "losses", "perceptual", "reconstruction"),
    "diffusion": ("context_probe", "diffusion_job", "diffusion_latents", "diffusion_train"),
}


def _training(modules: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"syncvp.training.{m}" for m in modules)


def test_every_training_module_has_a_place():
    placed = set(TRAINING_CORE) | {m for family in TRAINING_FAMILIES.values() for m in family}
    present = {p.stem for p in (REPO / "syncvp/training").glob("*.py") if p.stem != "__init__"}
    assert present == placed, f"unplaced: {sorted(present - placed)}; gone: {sorted(placed - present)}"


def test_trainer_families_are_siblings_on_one_core():
    """Neither family imports the other; the core imports neither."""
    every = tuple(m for family in TRAINING_FAMILIES.values() for m in family)
    bad = [o for m in TRAINING_CORE for o in offenders(f"syncvp/training/{m}", _training(every))]
    for name, family in TRAINING_FAMILIES.items():
        others = tuple(m for other, members in TRAINING_FAMILIES.items() if other != name for m in members)
        bad += [o for m in family for o in offenders(f"syncvp/training/{m}", _training(others))]
    assert bad == []
