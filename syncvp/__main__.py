"""Command line: `python -m syncvp <command>`.

check-params [FILE]   validate params.yaml (default ./params.yaml) and say what fans out
complete ...          sample the missing modalities of a whole video of given ones (`python -m syncvp complete -h`)
fanout [FILE]         print the `pipeline:` section implied by `datasets` and `pipeline.train`
folds DATASET         print the `dvc exp run --queue` commands of a leave-one-out loop (`--params FILE`)
import-official ...   convert the authors' released checkpoints into model files (`-h` for options)
predict ...           predict future frames of a folder of frames (`python -m syncvp predict -h`)
preset NAME [FILE]    print FILE (default params.yaml) with preset NAME merged in (`syncvp/presets/`)
"""

from __future__ import annotations

import argparse
import sys

import yaml

from syncvp.config import DatasetConfig, ParamsError, PathsConfig, RolePair, load_params
from syncvp.config.loader import build, read_yaml
from syncvp.config.pipeline import expected_pipeline
from syncvp.progress import ProgressEvent

RESIZE_MODES = ("area", "bilinear", "bicubic", "nearest")  # syncvp.prediction.api.RESIZE_MODES (not imported: torch)


def _fanout_yaml(path: str) -> str:
    """The pipeline section implied by `datasets`, `paths` and `pipeline.train` in `path`
    (works while the current `pipeline` section is wrong)."""
    data = read_yaml(path)
    datasets = build(dict[str, DatasetConfig], data.get("datasets"), "datasets", path)
    paths = build(PathsConfig, data.get("paths"), "paths", path)
    train = tuple(data.get("pipeline", {}).get("train", []))
    context_encoder = (data.get("diffusion") or {}).get("context_encoder", "context")
    section = expected_pipeline(datasets, paths, tuple(t for t in train if t in datasets), context_encoder)
    return yaml.safe_dump({"pipeline": section}, sort_keys=False, default_flow_style=None)


def _predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="predict future frames of a folder of frames (one subfolder per modality)")
    p.add_argument("--input", required=True, help="folder with one subfolder of frame images per modality")
    p.add_argument(
        "--out",
        required=True,
        help="output folder: <modality>/traj<k>/<i>.png and prediction.gif (+ spread.npz, spread.png with N >= 2)",
    )
    p.add_argument(
        "--params",
        default="params.yaml",
        help="params file: the `sampling` section, `run.compile` / `run.channels_last` / `run.cuda_graphs` "
        "for the denoiser (and model paths)",
    )
    p.add_argument(
        "--dataset",
        help="take the trained models of this dataset from `paths.models` (with --model: only the default "
        "--frames and the depth/field scales of its clip store)",
    )
    p.add_argument("--model", help="a joint.pt or stage-1 diffusion.pt file (overrides --dataset)")
    p.add_argument(
        "--autoencoders", nargs="+", metavar="MOD=CONTEXT,FUTURE", help="autoencoder files per modality (with --model)"
    )
    p.add_argument("--frames", type=int, help="future frames to predict (default: the dataset's rollout_frames)")
    p.add_argument("--trajectories", type=int, default=1, help="predictions per input (default 1)")
    p.add_argument("--present", help="comma-separated observed modalities (default: all)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="auto (CUDA when available, else CPU; as params run.device) | cpu | cuda (default auto)",
    )
    p.add_argument(
        "--resize", choices=RESIZE_MODES, help="centre-crop and resize frames of another size (default: refuse them)"
    )


def _dataset_models(params, dataset: str):
    """(the joint model file, {m: RolePair of its autoencoder files}) of `dataset` under `paths.models`."""
    from syncvp.prediction.load import context_role

    paths = params.paths
    model = paths.joint(dataset).model
    role = context_role(model) if model.is_file() else "context"
    aes = {
        m: RolePair(
            context=paths.autoencoder(dataset, m, role).model, future=paths.autoencoder(dataset, m, "future").model
        )
        for m in params.datasets[dataset].modalities
    }
    return model, aes


def _complete_parser(sub) -> None:
    p = sub.add_parser("complete", help="sample the other modalities for every frame of a video of the given ones")
    p.add_argument("--present", required=True, help="comma-separated given modalities (every frame), e.g. rgb")
    p.add_argument("--input", required=True, help="folder with one subfolder of frame images per given modality")
    p.add_argument(
        "--out",
        required=True,
        help="output folder: <modality>/traj<k>/<i>.png, prediction.gif, completion.gif (+ spread with N >= 2)",
    )
    p.add_argument(
        "--params",
        default="params.yaml",
        help="params file: the `sampling` section, `run.compile` / `run.channels_last` / `run.cuda_graphs` "
        "for the denoiser (and model paths)",
    )
    p.add_argument("--dataset", required=True, help="take the trained joint model of this dataset from `paths.models`")
    p.add_argument("--trajectories", type=int, default=1, help="completions per video (default 1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto | cpu | cuda (default auto)")
    p.add_argument(
        "--resize", choices=RESIZE_MODES, help="centre-crop and resize frames of another size (default: refuse them)"
    )


def _complete(args) -> int:
    from syncvp.prediction.api import complete_folder

    if args.trajectories < 1:
        raise ParamsError(f"--trajectories must be >= 1, got {args.trajectories}")
    device = _device(args.device)
    params = load_params(args.params)
    if args.dataset not in params.datasets:
        raise ParamsError(
            f"--dataset {args.dataset!r} is not in {args.params} (known: {list(params.datasets)}); "
            f"pass one of them or another --params"
        )
    mods = params.datasets[args.dataset].modalities
    given = [m for m in args.present.split(",") if m]
    wrong = [m for m in given if m not in mods]
    if wrong or not given or len(set(given)) >= len(mods):
        raise ParamsError(
            f"--present {args.present}: give some but not all of {args.dataset}'s modalities ({', '.join(mods)}), "
            f"comma-separated, e.g. --present {mods[0]}"
        )
    model, aes = _dataset_models(params, args.dataset)

    def log(line: str) -> None:
        print(line, flush=True)

    log(f"device: {device} (--device {args.device})")
    fmts = _frame_formats(params, args.dataset, aes, log)
    speed = _speed(params, log)
    bar = PredictProgress(f"complete ({args.trajectories} trajectory(ies))")
    try:
        out = complete_folder(
            args.input,
            args.out,
            model=model,
            autoencoders=aes,
            sampling=params.sampling,
            given=given,
            trajectories=args.trajectories,
            seed=args.seed,
            device=device,
            resize=args.resize,
            frame_formats=fmts,
            progress=bar,
            log=log,
            **speed,
        )
    finally:
        bar.close()
    for m, v in out.items():
        print(f"{m}: {v.shape[0]} trajectory(ies) x {v.shape[1]} frames -> {args.out}/{m}/ (format.json)")
    print(f"animation: {args.out}/completion.gif (given | completed)")
    return 0


class PredictProgress:
    """Shows `predict`'s progress events: a tqdm bar of sampling steps on a terminal, otherwise
    one line per finished chunk (a log stays readable)."""

    def __init__(self, desc: str, stream=None, terminal: bool | None = None):
        self.desc = desc
        self.stream = sys.stderr if stream is None else stream
        self.terminal = self.stream.isatty() if terminal is None else terminal
        self.bar = None
        self.lines = 0

    def __call__(self, event: ProgressEvent) -> None:
        from tqdm.auto import tqdm

        if self.bar is None:
            self.bar = tqdm(total=event.total, desc=self.desc, unit="step", file=self.stream, disable=not self.terminal)
        self.bar.set_postfix_str(event.message, refresh=False)
        self.bar.update(event.done - self.bar.n)
        chunks = int(event.metrics.get("chunks", 1))
        if not self.terminal and event.total and event.done * chunks % event.total == 0:
            print(f"{self.desc}: {event.message} done ({event.done}/{event.total} steps)", file=self.stream, flush=True)
            self.lines += 1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _speed(params, log) -> dict:
    """predict_folder / complete_folder's speed options from the params' `run` section (as the
    evaluate stage takes them), and where the one warning of a failed compilation or CUDA graph
    capture goes (stderr)."""
    run = params.run
    on = [name for name in ("compile", "channels_last", "cuda_graphs") if getattr(run, name)]
    if on:
        log(f"denoiser speed options (params run): {', '.join(on)}")

    def warn(line: str) -> None:
        print(f"warning: {line}", file=sys.stderr, flush=True)

    return {"compile": run.compile, "channels_last": run.channels_last, "cuda_graphs": run.cuda_graphs, "warn": warn}


def _device(name: str) -> str:
    """--device resolved as params `run.device` is (`syncvp.runtime.resolve_device`)."""
    from syncvp.runtime import resolve_device

    try:
        return str(resolve_device(name))
    except RuntimeError:
        raise ParamsError("--device cuda: no CUDA device is available; pass --device auto or --device cpu") from None


def _frame_formats(params, dataset: str | None, modalities, log) -> dict:
    """{m: PNG format} from the `summary.json` of `dataset`'s clip stores (the depth and field
    scales; read as JSON: opening a netCDF store would cost seconds)."""
    import json

    from syncvp.prediction.formats import frame_format

    if dataset is None:
        log("no --dataset: 1-channel predictions are written as 16-bit PNGs of model space (format.json)")
        return {}
    path = params.paths.clip_stores(dataset).summary
    try:
        stored = json.loads(path.read_text())["train"]["modalities"]
    except (OSError, ValueError, KeyError) as exc:
        log(f"{path} unreadable ({exc}): 1-channel predictions are written as 16-bit PNGs of model space only")
        return {}
    log(f"reading the modality encodings of {dataset} from {path}")
    return {m: frame_format(m, stored[m].get("channels", 1), stored[m]) for m in modalities if m in stored}


def _predict(args) -> int:
    from syncvp.prediction.api import predict_folder

    for flag, value in (("--frames", args.frames), ("--trajectories", args.trajectories)):
        if value is not None and value < 1:
            raise ParamsError(f"{flag} must be >= 1, got {value} (e.g. {flag} {16 if flag == '--frames' else 1})")
    device = _device(args.device)
    params = load_params(args.params)
    if args.dataset and args.dataset not in params.datasets:
        raise ParamsError(
            f"--dataset {args.dataset!r} is not in {args.params} (known: {list(params.datasets)}); "
            f"pass one of them or another --params"
        )
    if args.model:
        if not args.autoencoders:
            raise ParamsError("--model needs --autoencoders MOD=CONTEXT,FUTURE for each modality")
        model, aes = args.model, {}
        for item in args.autoencoders:
            mod, _, files = item.partition("=")
            ctx, _, fut = files.partition(",")
            if not (mod and ctx and fut):
                raise ParamsError(f"--autoencoders {item!r}: expected MOD=CONTEXT,FUTURE")
            aes[mod] = RolePair(context=ctx, future=fut)
    elif args.dataset:
        model, aes = _dataset_models(params, args.dataset)
    else:
        raise ParamsError("pass --dataset NAME (trained models of a dataset) or --model FILE and --autoencoders")
    frames = args.frames or (params.datasets[args.dataset].rollout_frames if args.dataset else None)
    if not frames:
        raise ParamsError("--frames is needed with --model (e.g. --frames 16)")
    present = args.present.split(",") if args.present else None
    unknown = [m for m in present or () if m not in aes]
    if unknown:
        raise ParamsError(
            f"--present {args.present}: {', '.join(map(repr, unknown))} is not a modality of the model "
            f"({', '.join(aes)}); pass a comma-separated subset, e.g. --present {next(iter(aes))}"
        )

    def log(line: str) -> None:
        print(line, flush=True)

    log(f"device: {device} (--device {args.device})")
    fmts = _frame_formats(params, args.dataset, aes, log)
    speed = _speed(params, log)
    bar = PredictProgress(f"predict ({args.trajectories} trajectory(ies))")
    try:
        out = predict_folder(
            args.input,
            args.out,
            model=model,
            autoencoders=aes,
            sampling=params.sampling,
            future=frames,
            trajectories=args.trajectories,
            present=present,
            seed=args.seed,
            device=device,
            resize=args.resize,
            frame_formats=fmts,
            progress=bar,
            log=log,
            **speed,
        )
    finally:
        bar.close()
    for m, v in out.items():
        print(f"{m}: {v.shape[0]} trajectory(ies) x {v.shape[1]} frames -> {args.out}/{m}/ (format.json)")
    print(f"animation: {args.out}/prediction.gif")
    if args.trajectories >= 2:
        print(f"spread over the {args.trajectories} trajectories: {args.out}/spread.npz, {args.out}/spread.png")
    return 0


def _folds(dataset: str, path: str) -> int:
    """Print one `dvc exp run --queue` per held-out sequence of `dataset`, then `--run-all`."""
    from syncvp.folds import fold_commands

    params = load_params(path)
    if dataset not in params.datasets:
        raise ParamsError(f"{path}: dataset {dataset!r} is not in `datasets` (known: {list(params.datasets)})")
    lines = fold_commands(dataset, params.datasets[dataset].source, path)
    print(f"{dataset}: {len(lines) - 1} leave-one-out folds (one DVC experiment each)", file=sys.stderr)
    print("\n".join(lines))
    return 0


def _preset_yaml(name: str, path: str) -> str:
    """The params file `path` with preset `name` merged in, validated strictly."""
    from syncvp import presets
    from syncvp.config import params_from_dict

    merged = presets.apply(read_yaml(path), presets.load(name), f"{path} + preset {name}")
    params_from_dict(merged, f"{path} + preset {name}")
    header = f"# params.yaml with preset `{name}` (syncvp/presets/{name}.yaml) merged in; see README\n"
    return header + yaml.safe_dump(merged, sort_keys=False, default_flow_style=None, width=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m syncvp")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (("check-params", "validate a params file"), ("fanout", "print the implied pipeline section")):
        p = sub.add_parser(name, help=text)
        p.add_argument("params", nargs="?", default="params.yaml")
    _predict_parser(sub)
    _complete_parser(sub)
    p = sub.add_parser("import-official", help="convert the released SyncVP checkpoints into model files")
    p.add_argument("--dataset", required=True, help="dataset of params.yaml the checkpoints were trained on")
    p.add_argument("--checkpoints", required=True, help="folder with the released files (names as released)")
    p.add_argument("--params", default="params.yaml", help="params file (use the official_<dataset> preset)")
    p = sub.add_parser("folds", help="print the DVC experiments of a leave-one-out loop over a dataset's sequences")
    p.add_argument("dataset", help="an image_sequence dataset of the params file with splits: leave_one_out")
    p.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    p = sub.add_parser("preset", help="print params with a preset merged in")
    p.add_argument("name", help="preset name (syncvp/presets/<name>.yaml)")
    p.add_argument("params", nargs="?", default="params.yaml")
    args = parser.parse_args(argv)
    if args.command == "import-official":
        from syncvp.data.store import StoreError
        from syncvp.models.official import OfficialCheckpointError
        from syncvp.models.official_import import import_official

        try:
            import_official(args.dataset, load_params(args.params), args.checkpoints)
            return 0
        except (ParamsError, OfficialCheckpointError, StoreError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.command in ("predict", "complete"):
        from syncvp.models.diffusion_file import ModelFileError
        from syncvp.prediction.api import PredictionInputError

        try:
            return _predict(args) if args.command == "predict" else _complete(args)
        except (ParamsError, ModelFileError, PredictionInputError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.command == "folds":
        try:
            return _folds(args.dataset, args.params)
        except (ParamsError, ValueError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    try:
        if args.command == "preset":
            print(_preset_yaml(args.name, args.params), end="")
            return 0
        if args.command == "fanout":
            print(_fanout_yaml(args.params), end="")
            return 0
        params = load_params(args.params)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.params}: OK")
    for key in ("synthesize", "download_era5", "pseudo_depth", "prepare", "train"):
        print(f"  {key:<14} {', '.join(getattr(params.pipeline, key)) or '-'}")  # dicts list their keys
    return 0


if __name__ == "__main__":
    sys.exit(main())
