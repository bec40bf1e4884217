"""Weight resolution and reading errors, and atomic writes."""

from __future__ import annotations

import pytest

from syncvp.io.atomic import atomic_dir, atomic_path, remove_stale, write_json
from syncvp.io.weights import MissingWeightsError, WeightsFileError, WeightsSpec, read_state_dict, resolve_weights
from tests.io.killed import kill_mid_write

SPEC = WeightsSpec(
    title="I3D (Kinetics-400)",
    filename="i3d_pretrained_400.pt",
    url="https://example.org/i3d_pretrained_400.pt",
    key="weights.i3d",
)


def test_missing_weights_messages(tmp_path):
    with pytest.raises(MissingWeightsError) as err:
        resolve_weights(None, SPEC)
    text = str(err.value)
    assert "weights.i3d is null" in text and "i3d_pretrained_400.pt" in text and "https://example.org" in text
    with pytest.raises(MissingWeightsError, match="not found: .*nope.pt"):
        resolve_weights(tmp_path / "nope.pt", SPEC)
    (tmp_path / "w.pt").write_bytes(b"x")
    assert resolve_weights(tmp_path / "w.pt", SPEC) == tmp_path / "w.pt"


@pytest.mark.parametrize(
    "how, reason",
    [
        ("truncated", "(truncated or foreign: a damaged PyTorch archive of "),
        ("truncated legacy", "(truncated or foreign: a damaged legacy PyTorch file of "),
        ("empty", "(truncated or foreign: the file is empty)"),
        ("html", "(truncated or foreign: not a PyTorch archive, it starts with b'<!DOCTYPE html>"),
        ("not tensors", "(it holds a dict with values other than tensors, not a state dict of tensors)"),
        ("directory", " is a directory, not I3D (Kinetics-400) weights"),
    ],
)
def test_a_bad_weights_file_names_itself_its_key_and_the_download(tmp_path, how, reason):
    import torch

    path = tmp_path / "i3d_pretrained_400.pt"
    state = {"conv.weight": torch.randn(32, 32)}
    torch.save(state, path, _use_new_zipfile_serialization=not how.endswith("legacy"))
    assert read_state_dict(path, SPEC).keys() == state.keys()
    if how.startswith("truncated"):
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "html":  # a download that got a web page instead
        path.write_text("<!DOCTYPE html><html><body>Sign in</body></html>")
    elif how == "not tensors":
        torch.save({"epoch": 3, "state_dict": state}, path)
    else:
        path.unlink()
        path.mkdir()
    with pytest.raises(WeightsFileError) as err:
        read_state_dict(path, SPEC)
    message = str(err.value)
    assert message.startswith(str(path)) and reason in message and "\n" not in message
    assert message.endswith(
        "; download i3d_pretrained_400.pt again from https://example.org/i3d_pretrained_400.pt "
        "(params.yaml weights.i3d)"
    )


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


def test_remove_stale_deletes_only_what_a_killed_writer_of_that_output_left(tmp_path):
    final = tmp_path / "synthetic"
    left = kill_mid_write(final)
    old = tmp_path / ".synthetic.old-4242"  # killed between the two renames of `atomic_dir`
    old.mkdir()
    unrelated = [
        tmp_path / n
        for n in (
            ".synthetic2.tmp-abcd1234",
            "synthetic2",
            ".synthetic.backup",
            ".synthetic.tmp-notes.txt",
            "synthetic.tmp-abcd1234",
        )
    ]
    for p in unrelated:
        p.mkdir()
    (final / "kept.txt").parent.mkdir()
    (final / "kept.txt").write_text("a finished output")
    assert remove_stale(final) == sorted([left, old])
    assert not left.exists() and not old.exists()
    assert all(p.is_dir() for p in unrelated) and (final / "kept.txt").read_text() == "a finished output"
    assert remove_stale(final) == [] and remove_stale(tmp_path / "none" / "synthetic") == []
