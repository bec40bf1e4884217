"""Imports run one way: stages -> pipelines -> syncvp; inside syncvp, models and diffusion are
independent, config stays light, metrics sit at the bottom, flows call library jobs rather than
networks, and the two trainer families share a core without importing each other.

An import is any `import` statement (at module level or inside a function), a call
`importlib.import_module("pkg.mod")`, or a string constant shaped like a module path of the project
("pkg.mod" or "pkg.mod:function", the form `importlib` callers take), so a dynamic import is seen too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("syncvp", "pipelines", "stages")
_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?")


def _dynamic_import(node: ast.AST) -> str | None:
    """The module a call `importlib.import_module("m")` / `__import__("m")` names, if literal."""
    if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
        return None
    func, module = node.func, node.args[0].value
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return module if name in ("import_module", "__import__") and isinstance(module, str) else None


def _named_module(node: ast.AST) -> str | None:
    """A string constant naming a project module ("syncvp.training.x" or "syncvp.training.x:train")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_PATH.fullmatch(node.value):
        module = node.value.partition(":")[0]
        return module if module.split(".")[0] in PROJECT else None
    return None


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import module`
        elif (name := _dynamic_import(node) or _named_module(node)) is not None:
            names.add(name)
    return names


def _matches(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def offenders(package: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    """ "<file> imports <name>" for each import under `package` of a `forbidden` module that is not `allowed`."""
    root = REPO / package
    paths = [root.with_suffix(".py")] if root.with_suffix(".py").is_file() else sorted(root.rglob("*.py"))
    bad = []
    for path in paths:
        for name in sorted(imports_of(path)):
            if _matches(name, forbidden) and not _matches(name, allowed):
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
    """Flows and workers included: a stage names them as imported objects, never as module strings."""
    assert offenders("stages", ("syncvp",), allowed=("syncvp.config",)) == []


def test_metrics_sit_at_the_bottom():
    """Metrics read model-space tensors and files: of the project, only `syncvp.io` (and themselves)."""
    assert offenders("syncvp/metrics", PROJECT, allowed=("syncvp.io", "syncvp.metrics")) == []


def test_flows_call_library_jobs_not_networks():
    """A flow wraps library jobs (`syncvp.data.pseudo_depth`, `syncvp.training`...), never a network module."""
    assert offenders("pipelines", ("syncvp.models",)) == []


# The training package: a generic core (loop, state, callbacks, records, data streams, optimizers,
# distribution) and two families on top of it. Every module of syncvp/training is in exactly one.
TRAINING_CORE = (
    "callbacks",
    "data",
    "distributed",
    "fastpath",
    "init_checkpoint",
    "loop",
    "optim",
    "records",
    "seeded_init",
    "state",
)
TRAINING_FAMILIES = {
    "autoencoder": ("autoencoder", "autoencoder_job", "autoencoder_train", "losses", "perceptual", "reconstruction"),
    "diffusion": ("context_probe", "diffusion_job", "diffusion_latents", "diffusion_objectives", "diffusion_train"),
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


def test_imports_of_sees_dynamic_imports(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        'import importlib\n\nWORKER = "syncvp.training.x:train"\nDOC = "see syncvp.models for more"\n\n'
        'def load():\n    from pipelines import train\n    return importlib.import_module("prefect")\n'
    )
    assert imports_of(path) == {"importlib", "syncvp.training.x", "pipelines", "pipelines.train", "prefect"}
