"""Leave-one-out folds of an image-sequence dataset as DVC experiments.

`python -m syncvp folds <dataset>` lists the sequences found under the dataset's root and prints
one `dvc exp run --queue -S '<file>:datasets.<dataset>.source.held_out=["<id>"]'` per sequence,
then `dvc exp run --run-all`: one DVC experiment per held-out sequence (a plant of the
agriculture experiment). A fold whose held-out sequence is one of `val` also sets `val`, with that
sequence replaced by the first training sequence, so every fold keeps as many val sequences.

Each fold is checked like `prepare` checks it (ids found, disjoint, a train split left) before
anything is printed, so a queued experiment does not fail on its split assignment.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from syncvp.data.sources import image_sequence


@dataclass(frozen=True)
class Fold:
    """One leave-one-out fold: the held-out sequence and the val sequences it trains with."""

    held_out: str
    val: tuple[str, ...]


def plan_folds(name: str, source, root: Path | None = None) -> list[Fold]:
    """One fold per sequence found under the source's root (natural order), each checked."""
    if source.kind != "image_sequence":
        raise ValueError(f"dataset {name!r}: folds need an image_sequence source, got kind {source.kind!r}")
    if source.splits != "leave_one_out":
        raise ValueError(
            f"dataset {name!r}: source.splits is {source.splits!r}; set it to leave_one_out (with held_out and "
            f"val) to run leave-one-out folds"
        )
    root = Path(source.root if root is None else root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset {name!r}: source.root {root} does not exist (point it at your data)")
    sequences = image_sequence.sequence_ids(source, root)
    folds = []
    for seq in sequences:
        val = source.val
        if seq in val:
            spare = next((s for s in sequences if s not in val and s != seq), None)
            if spare is None:
                raise ValueError(f"dataset {name!r}: no sequence can replace {seq!r} in val when it is held out")
            val = tuple(spare if v == seq else v for v in val)
        fold = Fold(held_out=seq, val=val)
        image_sequence.leave_one_out(sequences, replace(source, held_out=(seq,), val=val), root, name)
        folds.append(fold)
    return folds


def _hydra_list(ids: tuple[str, ...]) -> str:
    """A Hydra override list of quoted strings (ids such as 001 or 2021-06 stay strings)."""
    quoted = ('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in ids)
    return "[" + ",".join(quoted) + "]"


def experiment_name(name: str, seq: str) -> str:
    """A DVC experiment name (a valid git ref component) for the fold holding out `seq`."""
    return f"{name}-loo-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", seq).strip(".-")


def fold_commands(name: str, source, params_file: str = "params.yaml", root: Path | None = None) -> list[str]:
    """The `dvc exp run --queue` command of every fold, then `dvc exp run --run-all`."""
    prefix = "" if Path(params_file).as_posix() == "params.yaml" else f"{params_file}:"
    key = f"{prefix}datasets.{name}.source"
    lines, names = [], set()
    for fold in plan_folds(name, source, root):
        exp = experiment_name(name, fold.held_out)
        exp = exp if exp not in names else f"{exp}-{len(names)}"
        names.add(exp)
        args = ["dvc", "exp", "run", "--queue", "--name", exp, "-S", f"{key}.held_out={_hydra_list((fold.held_out,))}"]
        if fold.val != source.val:
            args += ["-S", f"{key}.val={_hydra_list(fold.val)}"]
        lines.append(shlex.join(args))
    return [*lines, "dvc exp run --run-all"]
