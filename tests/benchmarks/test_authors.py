"""benchmarks/authors.py without the authors' code: a clear one-line error, and the alternating
side-by-side bookkeeping (no timing is asserted)."""

from __future__ import annotations

from benchmarks import authors


def test_a_folder_without_their_code_is_refused_in_one_line(tmp_path, capsys):
    assert authors.main(["--authors-repo", str(tmp_path), "--no-train"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert err.startswith(f"error: {tmp_path} is not a checkout of the authors' SyncVP code")
    assert "models/ddpm/multimodal.py" in err and "github.com/PallottaEnrico/SyncVP" in err


def test_side_by_side_alternates_after_one_warm_up_each():
    calls = []
    ticks = iter(range(100))
    rows = authors.side_by_side(
        {"work": (lambda: calls.append("ours"), lambda: calls.append("theirs"))}, 3, lambda: next(ticks)
    )
    assert calls == ["ours", "theirs"] * 4  # warm-up pair, then three alternating pairs
    ours, theirs, faults_ours, faults_theirs = rows["work"]
    assert ours == theirs == 1  # each call spans one tick of the fake clock
    assert faults_ours >= 0 and faults_theirs >= 0
