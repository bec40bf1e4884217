"""Source digests: what changes them and what does not; the library's own digest enters the resume
fingerprints of training and evaluation, so a checkpoint or batch of other code is never reused."""

from __future__ import annotations

from pathlib import Path

from syncvp.io import digest


def _tree(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("x = 1\n")
    (root / "pkg" / "sub" / "b.py").write_text("y = 2\n")
    return root / "pkg"


def test_source_digest_follows_content_and_names_only(tmp_path):
    pkg = _tree(tmp_path)
    base = digest.source_digest(pkg)
    assert len(base) == 64 and base == digest.source_digest(pkg)
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.cpython-311.py").write_text("junk")
    (pkg / "notes.txt").write_text("not code")
    assert digest.source_digest(pkg) == base  # caches and other files do not count
    (pkg / "a.py").write_text("x = 2\n")
    changed = digest.source_digest(pkg)
    assert changed != base
    (pkg / "a.py").write_text("x = 1\n")
    assert digest.source_digest(pkg) == base
    (pkg / "a.py").rename(pkg / "c.py")
    assert digest.source_digest(pkg) != base  # a renamed module is other code


def test_code_digest_is_the_library_source():
    root = Path(digest.__file__).resolve().parents[1]
    assert root.name == "syncvp"
    assert digest.code_digest() == digest.source_digest(root)
