"""dvc.yaml's code deps cover what each stage runs: for every stage, the project modules it imports
(statically, transitively, lazy imports inside functions included) are listed as deps, directly or
under a listed folder, and no code dep names a file that is gone. A failure lists, per stage, the
files to add in dvc.yaml's format."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("stages", "pipelines", "syncvp")  # the project's own code; everything else is a library


def project_modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the project packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _lazy_attribute_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes inside a module-level `__getattr__` (PEP 562): its imports run only when an
    importer asks the module for an attribute it does not define, not when the module is imported."""
    return {id(n) for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "__getattr__" for n in ast.walk(f)}


@functools.lru_cache(maxsize=None)
def imports_of(module: str, path: Path) -> tuple[set[str], set[str], set[str]]:
    """(names it imports, names it asks of a module with `from m import name`, names its `__getattr__` imports).

    Imports anywhere in the file count (the project imports lazily inside functions); relative imports
    are resolved; a string constant naming a module ("pkg.mod" or "pkg.mod:function") counts too, for
    modules that `importlib.import_module` loads."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    lazy_nodes = _lazy_attribute_nodes(tree)
    eager, asked, lazy = set(), set(), set()
    for node in ast.walk(tree):
        found: set[str] = set()
        if isinstance(node, ast.Import):
            found = {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            found = {base} | {f"{base}.{a.name}" for a in node.names}
            asked |= {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            found = {node.value.partition(":")[0]}
        (lazy if id(node) in lazy_nodes else eager).update(found)
    return eager, asked, lazy


def closure(roots: list[str], modules: dict[str, Path]) -> set[str]:
    """Every project module that importing `roots` can run: their imports, transitively, with the
    parent packages of each (importing `a.b.c` runs `a` and `a.b` first)."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        parts = todo.pop().split(".")
        for m in (".".join(parts[:i]) for i in range(1, len(parts) + 1)):
            if m in modules and m not in seen:
                seen.add(m)
                eager, asked, _ = imports_of(m, modules[m])
                todo.extend(eager)
                for name in asked - modules.keys():  # `from pkg import attr`: pkg's __getattr__ may import
                    owner = name.rpartition(".")[0]
                    todo.extend(imports_of(owner, modules[owner])[2] if owner in modules else ())
    return seen


def stage_roots(name: str) -> list[str]:
    """The modules a stage starts from: its entry point (which imports its flow and worker inside
    the spec's loader functions, lazy imports the closure follows)."""
    return [f"stages.{name}"]


def code_deps() -> dict[str, list[str]]:
    """Stage name -> its deps in dvc.yaml that are not templated: the code (data deps are `${...}` paths,
    params are `params:`). Read from the file, not DVC's index, so that stages whose `foreach` is empty
    under the current params.yaml (download_era5, pseudo_depth by default) are checked too."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {
        name: [d for d in stage.get("do", stage).get("deps", []) if "${" not in d] for name, stage in stages.items()
    }


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d.rstrip("/") or path.startswith(d.rstrip("/") + "/") for d in deps)


def test_code_deps_cover_every_module_a_stage_imports():
    modules = project_modules()
    problems = []
    for name, deps in code_deps().items():
        files = sorted(modules[m].relative_to(REPO).as_posix() for m in closure(stage_roots(name), modules))
        missing = [f for f in files if not _covered(f, deps)]
        gone = [d for d in deps if not (REPO / d).exists()]
        if missing:
            problems.append(
                f"{name}: imports files its deps miss; add them to its deps:\n"
                + "".join(f"        - {f}\n" for f in missing)
            )
        if gone:
            problems.append(
                f"{name}: deps name files that no longer exist; remove them:\n"
                + "".join(f"        - {d}\n" for d in gone)
            )
    assert not problems, "dvc.yaml deps are out of date with the imports:\n" + "\n".join(problems)


def test_dvc_resolves_the_same_code_deps_and_ignores_bytecode():
    """DVC's expanded stages carry those deps, and a folder dep does not hash `__pycache__` (which
    changes with the interpreter, not the code)."""
    from dvc.repo import Repo

    declared = code_deps()
    with Repo(str(REPO)) as repo:
        stages = repo.index.stages
        assert stages, "dvc.yaml expands to no stages"
        for stage in stages:
            paths = {
                Path(d.fs_path).relative_to(REPO).as_posix()
                for d in stage.deps
                if type(d).__name__ != "ParamsDependency"
            }
            name = stage.name.partition("@")[0]
            assert set(declared[name]) <= paths, f"{stage.name}: DVC misses {sorted(set(declared[name]) - paths)}"
        folders = sorted({d for deps in declared.values() for d in deps if (REPO / d).is_dir()})
        for folder in folders:
            assert repo.dvcignore.is_ignored_dir(str(REPO / folder / "__pycache__")), folder
            assert repo.dvcignore.is_ignored_file(str(REPO / folder / "x.cpython-311.pyc")), folder


def test_closure_follows_relative_lazy_and_named_imports(tmp_path):
    files = {
        "pkg/__init__.py": "def __getattr__(name):\n    from pkg import heavy\n    return heavy\n",
        "pkg/entry.py": "from . import a\nfrom .sub import b\n\ndef run():\n    import pkg.c\n",
        "pkg/a.py": "TARGET = 'pkg.d:main'\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/b.py": "from ..e import x\n",
        "pkg/c.py": "",
        "pkg/d.py": "",
        "pkg/e.py": "",
        "pkg/heavy.py": "",
        "pkg/asks.py": "from pkg import predict\n",
    }
    modules = {}
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        parts = Path(rel).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    assert closure(["pkg.entry"], modules) == {
        "pkg",
        "pkg.entry",
        "pkg.a",
        "pkg.sub",
        "pkg.sub.b",
        "pkg.c",
        "pkg.d",
        "pkg.e",
    }
    assert closure(["pkg.asks"], modules) == {"pkg", "pkg.asks", "pkg.heavy"}  # `__getattr__` runs on request only
