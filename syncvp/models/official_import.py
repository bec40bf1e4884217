"""`python -m syncvp import-official`: the authors' released checkpoints as this project's model files.

For a dataset `<ds>` with modalities [m0, m1] (the release's rgb and depth), the folder given holds
the files as released:

    ae_rgb_2f_<ds>.pth, ae_depth_2f_<ds>.pth     context autoencoders  -> <models>/<ds>-<m>-context/autoencoder.pt
    ae_rgb_8f_<ds>.pth, ae_depth_8f_<ds>.pth     future autoencoders   -> <models>/<ds>-<m>-future/autoencoder.pt
    syncvp_<ds>.pth                              the joint model       -> <models>/<ds>/joint.pt

(2f / 8f stand for the dataset's context_frames / future_frames.) The release has no stage-1
models; each branch of the joint model (its UNet without the cross-attention) is written as
`<models>/<ds>-<m>/diffusion.pt`, marked `meta["source"] = "official-joint-branch"`, so that the
files evaluation lists exist (the official presets do not score them as a baseline).

The architecture comes from params.yaml (the presets official_cityscapes / official_bair), the
channels and resolution from the dataset's test clip store. Every file is read and checked
strictly (`syncvp.models.official.fit_official`) before anything is written; each output is
written to a temporary path and renamed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from syncvp.config import ParamsError
from syncvp.config.params import Params
from syncvp.data.store import read_info
from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder, save_autoencoder
from syncvp.models.diffusion_file import save_diffusion_model
from syncvp.models.factory import build_joint_unet
from syncvp.models.official import OfficialCheckpointError, fit_official, official_joint_key, official_key

RELEASED_MODALITIES = ("rgb", "depth")  # the release's names for the first and second modality
SOURCE = "https://github.com/PallottaEnrico/SyncVP (download.sh)"


def released_names(dataset: str, context_frames: int, future_frames: int) -> dict[str, str]:
    """{what: released file name}: `ae-<rgb|depth>-<context|future>` and `joint`."""
    names = {"joint": f"syncvp_{dataset}.pth"}
    for mod in RELEASED_MODALITIES:
        for role, frames in (("context", context_frames), ("future", future_frames)):
            names[f"ae-{mod}-{role}"] = f"ae_{mod}_{frames}f_{dataset}.pth"
    return names


def check_params(dataset: str, params: Params) -> None:
    """The params must describe the released architecture (a one-line ParamsError otherwise)."""
    if dataset not in params.datasets:
        raise ParamsError(f"--dataset {dataset!r} is not in params.yaml (known: {list(params.datasets)})")
    fix = f"run `python -m syncvp preset official_{dataset} > params.yaml` or set it by hand"
    checks = (
        (
            len(params.datasets[dataset].modalities) == 2,
            f"datasets.{dataset}.modalities",
            "must list two modalities (the release's rgb and depth)",
        ),
        (params.autoencoder_for(dataset).axis_token == "pvdm", "autoencoder.axis_token", "must be pvdm"),
        (params.unet_for(dataset).condition_layout == "official", "unet.condition_layout", "must be official"),
        (params.joint.stca_layout == "official", "joint.stca_layout", "must be official"),
        (not params.joint.shared_weights, "joint.shared_weights", "must be false"),
        (params.diffusion.context_encoder == "context", "diffusion.context_encoder", "must be context"),
        (not params.diffusion.context_motion, "diffusion.context_motion", "must be false"),
        (not params.diffusion.residual, "diffusion.residual", "must be false"),
        (not params.diffusion.normalize, "diffusion.normalize", "must be false"),
        (params.diffusion.prediction == "eps", "diffusion.prediction", "must be eps"),
    )
    for ok, key, what in checks:
        if not ok:
            raise ParamsError(f"{key} {what} for the released checkpoints: {fix}")


def _read(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise OfficialCheckpointError(f"{path}: not a state dict of tensors (is it a released checkpoint?)")
    return state


def import_official(
    dataset: str, params: Params, checkpoints: str | Path, log: Callable[[str], None] = print
) -> list[Path]:
    """Convert the released checkpoints of `dataset` found in `checkpoints` into the model files the
    pipeline reads; returns the files written. Everything is checked before the first write.

    Raises:
        ParamsError: params that do not describe the released architecture, or a missing folder/file.
        OfficialCheckpointError: a file that does not fit (names the file, key and expected shape).
        StoreError: the dataset's test clip store is missing (run `dvc repro prepare@<dataset>`).
    """
    check_params(dataset, params)
    folder = Path(checkpoints)
    config, paths = params.datasets[dataset], params.paths
    names = released_names(dataset, config.context_frames, config.future_frames)
    missing = [n for n in names.values() if not (folder / n).is_file()]
    if missing:
        raise ParamsError(
            f"--checkpoints {folder}: missing {', '.join(missing)} (download them as listed in "
            f"{SOURCE}, under these names)"
        )
    info = read_info(paths.store(dataset, "test"), require=config.modalities)
    if (info.height, info.width) != tuple(config.resolution):
        raise ParamsError(
            f"{paths.store(dataset, 'test')} holds {info.height}x{info.width} frames, "
            f"datasets.{dataset}.resolution is {list(config.resolution)}: rerun prepare"
        )
    modality = dict(zip(RELEASED_MODALITIES, config.modalities))
    autoencoders, shapes = {}, {}
    for mod, ours in modality.items():
        for role, frames in (("context", config.context_frames), ("future", config.future_frames)):
            path = folder / names[f"ae-{mod}-{role}"]
            spec = AutoencoderSpec.from_config(
                params.autoencoder_for(dataset),
                channels=info.modalities[ours].channels,
                frames=frames,
                resolution=config.resolution,
            )
            model = TriplaneAutoencoder(spec)
            model.load_state_dict(fit_official(_read(path), model, official_key, str(path)), strict=True)
            autoencoders[(ours, role)] = (model, path)
        shapes[ours] = (autoencoders[(ours, "future")][0].latent_shape, autoencoders[(ours, "context")][0].latent_shape)
    joint = build_joint_unet(params.unet_for(dataset), params.joint, shapes)
    path = folder / names["joint"]
    joint.load_state_dict(
        fit_official(_read(path), joint, lambda k: official_joint_key(k, joint), str(path)), strict=True
    )

    written = []
    for (ours, role), (model, path) in autoencoders.items():
        meta = {
            "unit": f"{dataset}-{ours}-{role}",
            "dataset": dataset,
            "modality": ours,
            "role": role,
            "source": "official",
            "file": path.name,
        }
        written.append(save_autoencoder(paths.autoencoder(dataset, ours, role).model, model.eval(), meta))
    meta = {
        "unit": dataset,
        "dataset": dataset,
        "weights": "official",
        "source": "official",
        "file": path.name,
        "init": None,
        "context_frames": config.context_frames,
        "future_frames": config.future_frames,
    }
    for ours in config.modalities:
        written.append(
            save_diffusion_model(
                paths.single(dataset, ours).model,
                joint.branch(ours),
                shapes={ours: shapes[ours]},
                unet=params.unet_for(dataset),
                diffusion=params.diffusion,
                meta={**meta, "unit": f"{dataset}-{ours}", "source": "official-joint-branch"},
            )
        )
    written.append(
        save_diffusion_model(
            paths.joint(dataset).model,
            joint,
            shapes=shapes,
            unet=params.unet_for(dataset),
            diffusion=params.diffusion,
            joint=params.joint,
            meta=meta,
        )
    )
    for f in written:
        log(f"wrote {f}")
    return written
