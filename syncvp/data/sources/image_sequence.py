"""Image-sequence folders (Cityscapes sequences + disparity, BAIR, agricultural series).

Layout::

    <root>/
      splits/train.txt   (splits: files) one entry per line ('#' starts a comment): a sequence
      splits/val.txt     id, or a folder (relative to the modality folders) whose sequences all
      splits/test.txt    belong to the split; a sequence in no split is not used
      <modality>/        one folder per configured modality (e.g. rgb/, depth/)
        <sequence>/      any nesting; the frames of a sequence sit in one folder
          <frame>.png    png, jpg, jpeg, bmp, tif, tiff or webp

File stems are matched (in full) by `frame_pattern`: its group `frame` names the frame, which
orders the frames (digit runs compare as numbers) and pairs them across modalities; its
optional group `sequence` splits one folder into several sequences (Cityscapes keeps all
snippets of a city in one folder: `aachen_000000_000019_leftImg8bit.png` has sequence
`aachen_000000` and frame `000019`). A sequence's id is its folder path relative to the modality
folder, plus `/<sequence group>` when the pattern has one.

With `splits: leave_one_out` no split file is read: the sequence ids in `held_out` form the test
split, those in `val` the val split, and every other sequence found (in any modality folder) the
train split; an id that is not found is an error naming it.

Every modality must have exactly the same frames of every used sequence: a missing or extra
frame is an error naming it, never a silent shift. Each sequence keeps every `frame_step`-th
frame and is cut into videos of `video_frames` frames every `stride` kept frames; video ids are
`<sequence id with '/' -> '__'>-<first raw frame position>`.
"""

from __future__ import annotations

import difflib
import re
from collections import defaultdict
from pathlib import Path

import xarray as xr

from syncvp.data import frame_sources
from syncvp.data.frame_sources import IMAGE_EXTENSIONS, FramePairingError, FrameVideo
from syncvp.data.raw import RawVideo
from syncvp.progress import ProgressFn, no_progress

SPLIT_FILES = "splits"


def scan_modality(folder: Path, pattern: re.Pattern) -> dict[str, dict[str, Path]]:
    """{sequence id: {frame: file}} of one modality folder."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (each configured modality needs a folder under the root)")
    found: dict[str, dict[str, Path]] = defaultdict(dict)
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
            continue
        match = pattern.fullmatch(path.stem)
        if match is None:
            raise ValueError(f"{path}: the file name does not match frame_pattern {pattern.pattern!r}")
        rel = path.parent.relative_to(folder).as_posix()
        group = match.groupdict().get("sequence")
        if rel == "." and group is None:
            raise ValueError(f"{path}: frames must sit in a sequence folder below {folder} "
                             "(or frame_pattern must name a `sequence` group)")
        seq = group if rel == "." else f"{rel}/{group}" if group else rel
        frame = match["frame"]
        if frame in found[seq]:
            raise FramePairingError(f"{path}: frame {frame!r} of sequence {seq!r} also comes from {found[seq][frame]}")
        found[seq][frame] = path
    return dict(found)


def read_splits(root: Path) -> dict[str, list[str]]:
    """The entries of `<root>/splits/{train,val,test}.txt`."""
    out = {}
    for split in ("train", "val", "test"):
        path = root / SPLIT_FILES / f"{split}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: list the {split} sequences (or their folders) there, one per line")
        entries = [line.split("#", 1)[0].strip().strip("/") for line in path.read_text().splitlines()]
        out[split] = [e for e in entries if e]
        if not out[split]:
            raise ValueError(f"{path} lists no sequence")
    return out


def assign_splits(sequences: list[str], entries: dict[str, list[str]], root: Path) -> dict[str, list[str]]:
    """Split -> its sequences (natural order); an entry matching nothing or a sequence in two
    splits is an error."""
    owner: dict[str, str] = {}
    for split, items in entries.items():
        for entry in items:
            matched = [s for s in sequences if s == entry or s.startswith(entry + "/")]
            if not matched:
                raise ValueError(f"{root / SPLIT_FILES / (split + '.txt')}: entry {entry!r} matches no sequence")
            for seq in matched:
                if owner.get(seq, split) != split:
                    raise ValueError(f"sequence {seq!r} is in both the {owner[seq]} and the {split} split")
                owner[seq] = split
    return {split: sorted((s for s, o in owner.items() if o == split), key=frame_sources.natural_key)
            for split in entries}


def leave_one_out(sequences: list[str], source, root: Path, name: str) -> dict[str, list[str]]:
    """Split -> its sequences: `held_out` -> test, `val` -> val, the rest -> train. An id not
    found under `root` or an empty train split is a one-line error."""
    found = set(sequences)
    for key in ("held_out", "val"):
        for i, seq in enumerate(getattr(source, key)):
            if seq not in found:
                raise ValueError(f"dataset {name!r}: source.{key}[{i}] {seq!r} is not a sequence found under {root} "
                                 f"({_some(seq, sequences)})")
    test, val = list(source.held_out), list(source.val)
    train = [s for s in sequences if s not in test and s not in val]
    if not train:
        raise ValueError(f"dataset {name!r}: leave_one_out leaves no sequence for train: all {len(sequences)} "
                         f"sequences found under {root} are in source.held_out or source.val")
    return {split: sorted(seqs, key=frame_sources.natural_key)
            for split, seqs in (("train", train), ("val", val), ("test", test))}


def _some(seq: str, sequences: list[str], shown: int = 5) -> str:
    """A few sequence ids to tell the user what ids look like: the closest ones to `seq`, or the first."""
    if not sequences:
        return "no sequence found"
    close = difflib.get_close_matches(seq, sequences, n=shown)
    listed = close or sequences[:shown]
    more = ", ..." if len(sequences) > len(listed) else ""
    return (f"{len(sequences)} found, {'closest' if close else 'e.g.'}: "
            f"{', '.join(map(repr, listed))}{more}")


def scan(source, root: Path) -> tuple[dict[str, dict[str, dict[str, Path]]], list[str]]:
    """({modality: {sequence id: {frame: file}}}, every sequence id found, natural order)."""
    root = Path(root)
    pattern = re.compile(source.frame_pattern)
    scans = {m: scan_modality(root / m, pattern) for m in source.modalities}
    return scans, sorted(set().union(*scans.values()), key=frame_sources.natural_key)


def sequence_ids(source, root: Path) -> list[str]:
    """Every sequence id found under `root` (any modality folder), natural order."""
    return scan(source, root)[1]


def split_sequences(name: str, source, sequences: list[str], root: Path) -> dict[str, list[str]]:
    """Split -> its sequences, by the split files or leave-one-out (`source.splits`)."""
    if source.splits == "leave_one_out":
        return leave_one_out(sequences, source, root, name)
    return assign_splits(sequences, read_splits(root), root)


def _loader(paths: tuple[Path, ...], spec):
    if spec.classes is not None:
        return lambda: frame_sources.stack_frames(paths, lambda p: frame_sources.read_classes(p, spec.classes))
    return lambda: frame_sources.stack_frames(paths, lambda p: frame_sources.read_image(p, channels=spec.channels,
                                                                          value_range=spec.value_range))


def videos(name: str, source, root: Path) -> list[FrameVideo]:
    """Every video of an image-sequence source under `root`, split by split."""
    root = Path(root)
    scans, sequences = scan(source, root)
    out = []
    for split, seqs in split_sequences(name, source, sequences, root).items():
        for seq in seqs:
            files = {m: scans[m].get(seq, {}) for m in source.modalities}
            keys = frame_sources.pair_frames(files, f"dataset {name!r}, sequence {seq!r}")[::source.frame_step]
            for pos in frame_sources.clip_positions(len(keys), source.video_frames, source.stride):
                chunk = {m: tuple(files[m][k] for k in keys[pos:pos + source.video_frames]) for m in source.modalities}
                out.append(FrameVideo(split=split, video_id=f"{seq.replace('/', '__')}-{pos * source.frame_step:06d}",
                                      loaders={m: _loader(chunk[m], spec) for m, spec in source.modalities.items()},
                                      files=chunk))
    return out


def modality_attrs(source) -> dict[str, dict]:
    out = {}
    for m, spec in source.modalities.items():
        attrs = {"encoding": "rgb" if spec.channels == 3 else "gray", "source_folder": m, "resize": spec.resize}
        if spec.classes is not None:
            attrs.update(encoding="class_gray", num_classes=spec.classes,
                         meaning="class k stored as round(k * 255 / (num_classes - 1))")
        if spec.value_range is not None:
            attrs["value_range"] = [float(v) for v in spec.value_range]
            attrs["meaning"] = "255 * (value - value_range[0]) / (value_range[1] - value_range[0]), clipped"
        out[m] = attrs
    return out


def dataset_constants(name: str, cfg, paths) -> dict:
    """What every split needs, computed once: nothing for this kind; the split assignment is
    checked here, before any split is built (a wrong held_out id fails before any frame is read)."""
    src = cfg.source
    split_sequences(name, src, sequence_ids(src, src.root), src.root)
    return {}


def prepare_split(name: str, cfg, paths, split: str, constants: dict,
                  progress: ProgressFn = no_progress) -> xr.Dataset:
    """The clip store of one split."""
    src = cfg.source
    return frame_sources.prepare_split(name, cfg, videos(name, src, src.root), split,
                                       modes={m: spec.resize for m, spec in src.modalities.items()},
                                       attrs=modality_attrs(src), interim_dir=paths.interim_dir(name),
                                       progress=progress)


def raw_videos(name: str, cfg, raw_dir: Path) -> list[RawVideo]:
    """The RGB frames of every video under `raw_dir` (the source's root), for pseudo-depth."""
    return frame_sources.raw_listing(videos(name, cfg.source, raw_dir), cfg.source.rgb_modality)
