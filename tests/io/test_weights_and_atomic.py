"""Weight resolution errors and atomic writes."""

from __future__ import annotations

import pytest

from syncvp.io.atomic import atomic_dir, atomic_path, write_json
from syncvp.io.weights import MissingWeightsError, WeightsSpec, resolve_weights

SPEC = WeightsSpec(title="I3D (Kinetics-400)", filename="i3d_pretrained_400.pt",
                   url="https://example.org/i3d_pretrained_400.pt", key="weights.i3d")


def test_missing_weights_messages(tmp_path):
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(None, SPEC)
    text = str(err.value)
    assert "weights.i3d is null" in text and "i3d_pretrained_400.pt" in text and "https://example.org" in text
    with pytest.raises(MissingWeightsError, match="not found: .*nope.pt"):
        resolve_weights(tmp_path / "nope.pt", SPEC)
    (tmp_path / "w.pt").write_bytes(b"x")
    assert resolve_weights(tmp_path / "w.pt", SPEC) == tmp_path / "w.pt"


def test_atomic_file_and_dir(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert target.read_text().startswith("{") and len(list(tmp_path.iterdir())) == 1
    out = tmp_path / "dir"
    with atomic_dir(out) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "y").write_text("2")
            raise RuntimeError
    assert sorted(p.name for p in out.iterdir()) == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "dir"]
