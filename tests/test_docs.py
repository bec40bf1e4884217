"""The user documentation stands on its own and matches the code.

- Every relative link in README.md and docs/*.md points to a file of the repository, and a link
  with an anchor (`page.md#section`, `#section`) to a heading of that page (GitHub's slugs).
- No file of the repository refers to design notes kept outside it (a path into a sibling folder, or the
  names of those notes), so a clone has every page the project cites.
- The hyperparameter tables of docs/method.md list every key of their params.yaml section, with
  the value of params.yaml and the value of the paper preset; the `evaluate` table of
  docs/evaluation.md lists every key of that section with its params.yaml value.
- docs/data.md names every source kind, docs/architecture.md every DVC stage.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml

from syncvp import presets

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]

# Folders that hold outputs, environments or caches, never project text.
SKIPPED_DIRS = {".git", ".venv", ".dvc", ".prefect", "data", "models", "eval", "__pycache__", ".ruff_cache"}
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".lock", ".sh", ".json"}
# Built from parts so that this file does not match itself.
PRIVATE_NOTES = ("METHOD", "EVAL_AND_DEPTH", "DESIGN", "ORCHESTRATION", "ANCHORS", "PAPER_SUPPLEMENTARY")
PRIVATE = re.compile(r"\.\./" + "shared" + r"|\b(" + "|".join(PRIVATE_NOTES) + r")\.md\b|\bMETHOD" + r" §")

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)

# Sub-mappings flattened into dotted rows in the tables; every other value is one row.
SUBSECTIONS = {"gan", "ema", "noise"}
METHOD_SECTIONS = (
    "autoencoder",
    "train_autoencoder",
    "unet",
    "diffusion",
    "joint",
    "sampling",
    "train_single",
    "train_joint",
)


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces -> '-'."""
    text = re.sub(r"`", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings (repeated headings get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(page: Path) -> list[str]:
    """Link targets of a page, outside code blocks and inline code."""
    text = FENCE.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    return [a or b for a, b in LINK.findall(text)]


def test_slug_follows_github():
    assert slug("Real data sources") == "real-data-sources"
    assert slug("Autoencoders (`train_autoencoder`)") == "autoencoders-train_autoencoder"
    assert (
        slug("7.1 Context latent layout (`unet.condition_layout`)") == "71-context-latent-layout-unetcondition_layout"
    )


def test_docs_pages_exist():
    for name in ("method", "evaluation", "data", "architecture", "extending"):
        assert (DOCS / f"{name}.md").is_file(), f"docs/{name}.md is missing"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_resolve(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists() or REPO not in file.parents and file != REPO:
            broken.append(f"{target} (no such file in the repository)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target} (no heading with anchor #{anchor} in {file.relative_to(REPO)})")
    assert not broken, f"{page.relative_to(REPO)}: broken links: {broken}"


def repository_text_files():
    for path in sorted(REPO.rglob("*")):
        parts = path.relative_to(REPO).parts
        if any(part in SKIPPED_DIRS for part in parts[:-1]) or not path.is_file() or path.is_symlink():
            continue
        if path.suffix in TEXT_SUFFIXES or path.name in ("Makefile", ".gitignore", ".dvcignore"):
            yield path


def test_private_pattern_matches_what_it_should():
    assert PRIVATE.search("see " + "../" + "shared/docs/x")
    assert PRIVATE.search("(" + "METHOD" + ".md §2)")
    assert PRIVATE.search("(" + "METHOD" + " §8.1)")
    assert not PRIVATE.search("docs/method.md §7.1")


def test_no_reference_to_notes_outside_the_repository():
    found = []
    for path in repository_text_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if PRIVATE.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:100]}")
    assert not found, "references to notes that are not in the repository (point them at docs/):\n" + "\n".join(found)


def flatten(section: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in section.items():
        if isinstance(value, dict) and key in SUBSECTIONS:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def tables(page: Path) -> dict[str, list[list[str]]]:
    """{section: rows} of the tables whose header is `| `<section>` key | ...`."""
    out: dict[str, list[list[str]]] = {}
    current = None
    for line in page.read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]] if line.startswith("|") else None
        if cells is None:
            current = None
            continue
        header = re.fullmatch(r"`(\w+)` key", cells[0])
        if header:
            current = out.setdefault(header.group(1), [])
        elif current is not None and not set(cells[0]) <= {"-", " "}:
            current.append(cells)
    return out


def cell_value(cell: str):
    assert cell.startswith("`") and cell.endswith("`"), f"value cell {cell!r} must be inline code"
    return yaml.safe_load(cell[1:-1])


def same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def test_same_compares_values_not_spelling():
    assert same(yaml.safe_load("1.0e-04"), 1e-4) and same(yaml.safe_load("[0.5, 0.9]"), [0.5, 0.9])
    assert not same(yaml.safe_load("0.002"), 0.003) and not same(False, 0) and not same(None, [])


@pytest.fixture(scope="module")
def params_and_paper():
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    return base, presets.apply(base, presets.load("paper_cityscapes"))


def test_method_tables_match_params_and_preset(params_and_paper):
    base, paper = params_and_paper
    found = tables(DOCS / "method.md")
    errors = []
    for section in METHOD_SECTIONS:
        rows = {row[0].strip("`"): row for row in found.get(section, [])}
        want, want_paper = flatten(base[section]), flatten(paper[section])
        if rows.keys() != want.keys():
            errors.append(
                f"{section}: missing {sorted(want.keys() - rows.keys())}, unknown {sorted(rows.keys() - want.keys())}"
            )
        for key in want.keys() & rows.keys():
            default, preset = cell_value(rows[key][1]), cell_value(rows[key][2])
            if not same(default, want[key]):
                errors.append(f"{section}.{key}: docs default {default!r}, params.yaml {want[key]!r}")
            if not same(preset, want_paper[key]):
                errors.append(f"{section}.{key}: docs paper {preset!r}, preset {want_paper[key]!r}")
    assert not errors, "docs/method.md section 6 is out of date:\n" + "\n".join(errors)


def test_evaluate_table_matches_params(params_and_paper):
    base, _ = params_and_paper
    rows = {row[0].strip("`"): row for row in tables(DOCS / "evaluation.md").get("evaluate", [])}
    want = flatten(base["evaluate"])
    assert rows.keys() == want.keys(), (sorted(want.keys() - rows.keys()), sorted(rows.keys() - want.keys()))
    wrong = {k: (cell_value(rows[k][1]), v) for k, v in want.items() if not same(cell_value(rows[k][1]), v)}
    assert not wrong, f"docs/evaluation.md `evaluate` defaults differ from params.yaml: {wrong}"


def test_data_page_names_every_source_kind():
    from syncvp.data.sources import SOURCES

    text = (DOCS / "data.md").read_text()
    missing = [kind for kind in SOURCES if f"`{kind}`" not in text]
    assert not missing, f"docs/data.md does not describe the source kinds {missing}"


def test_architecture_page_names_every_stage():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    text = (DOCS / "architecture.md").read_text()
    missing = [name for name in stages if f"`{name}`" not in text]
    assert not missing, f"docs/architecture.md does not describe the stages {missing}"
