"""The released joint model (`syncvp_<ds>.pth`) and the import command: official-layout state dicts
are built from our own modules through the inverse key map (written here, not in the library),
imported back strictly, and must reproduce the forward pass; the official presets build models
of the released shapes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from syncvp import presets
from syncvp.__main__ import main
from syncvp.config import params_from_dict
from syncvp.config.diffusion import JointConfig, UNetConfig
from syncvp.config.loader import read_yaml
from syncvp.data import store
from syncvp.models.autoencoder import AutoencoderSpec, TriplaneAutoencoder, load_autoencoder
from syncvp.models.diffusion_file import load_diffusion_model
from syncvp.models.factory import build_joint_unet
from syncvp.models.official import (
    OfficialCheckpointError,
    fit_official,
    load_official_joint,
    official_joint_key,
    official_key,
)
from syncvp.models.official_import import released_names
from syncvp.models.triplane import TriplaneShape
from tests.conftest import with_pipeline
from tests.models.test_official import official_state
from tests.models.tiny import perturb

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[2]
MODS = ("rgb", "depth")
FUTURE, CONTEXT = TriplaneShape(4, 4, 4, 4), TriplaneShape(4, 4, 4, 2)
_RES_BACK = {
    "norm_in": "in_layers.0",
    "conv_in": "in_layers.2",
    "emb_proj": "emb_layers.1",
    "norm_out": "out_layers.0",
    "conv_out": "out_layers.3",
    "skip": "skip_connection",
}
_STCA_BACK = {
    ("norm", 0): "norm_1",
    ("norm", 1): "norm_2",
    ("query", 0): "cross_attn.W_q_x",
    ("query", 1): "cross_attn.W_q_y",
    ("value", 0): "cross_attn.W_v_x",
    ("value", 1): "cross_attn.W_v_y",
    ("out", 0): "cross_attn.W_x_out",
    ("out", 1): "cross_attn.W_y_out",
}


def _official_unet_key(name: str, last: dict[tuple[str, int], int]) -> str:
    """Inverse map for one branch: our TriplaneUNet name -> the official UNetModel name (`last`:
    the index of each block's closing cross-plane attention)."""
    parts = name.split(".")
    if parts[0] == "time_embed":
        return f"time_embed.{parts[2]}.{parts[3]}"
    if parts[0] == "head":
        return f"out.{0 if parts[1] == 'norm' else 2}.{parts[2]}"
    if parts[:2] == ["input_blocks", "0"]:
        return f"input_blocks.0.0.{parts[-1]}"
    if parts[0] == "middle_block":
        part, i, k, rest = "middle", None, int(parts[2]), parts[3:]
    else:
        part, i, k, rest = parts[0], int(parts[1]), int(parts[3]), parts[4:]
    inner = ".".join(_RES_BACK.get(p, p) for p in rest)
    if part == "middle":
        return f"mid_attn.{inner}" if k == last[("middle", 0)] else f"middle_block.{k}.{inner}"
    if k == last[(part, i)]:
        return f"{part.removesuffix('_blocks')}_attns.{i}.{inner}"
    return f"{part}.{i}.{k}.{inner}"


def official_from_ours(model) -> dict[str, torch.Tensor]:
    """The inverse key map: a JointUNet state dict under the official names (plus the `zeros` buffer)."""
    branch = model.branch(MODS[0])
    last = {("middle", 0): len(branch.middle_block.layers) - 1}
    for part in ("input_blocks", "output_blocks"):
        for i, block in enumerate(getattr(branch, part)):
            last[(part, i)] = len(block.layers) - 1
    out = {}
    for name, value in model.state_dict().items():
        parts = name.split(".")
        if parts[0] == "branches":
            which = "rgb" if parts[1] == MODS[0] else "depth"
            rest = ".".join(parts[2:])
            key = _official_unet_key(rest, last)
            out[f"diff_{which}.diffusion_model.{key}"] = value.clone()
        else:
            _, i, what, mod, param = parts
            out[f"cross_attns.{int(i) - 1}.{_STCA_BACK[(what, MODS.index(mod))]}.{param}"] = value.clone()
    for which, m in zip(("rgb", "depth"), MODS):
        shape = model.branch(m).shape
        out[f"diff_{which}.diffusion_model.zeros"] = torch.zeros(1, shape.channels, shape.length)
    return out


def tiny_joint(seed: int = 0):
    unet = UNetConfig(
        model_channels=16,
        channel_mult=(1, 2),
        num_res_blocks=1,
        attention_resolutions=(4, 2, 1),
        num_heads=2,
        norm_groups=4,
        dropout=0.0,
        condition_layout="official",
    )
    joint = JointConfig(
        cross_attention="deep",
        deep_levels=1,
        split_planes=True,
        normalize=True,
        num_heads=2,
        shared_weights=False,
        same_noise=True,
        stca_layout="official",
        locality=0.0,
        cross_inputs=False,
    )
    torch.manual_seed(seed)
    return build_joint_unet(unet, joint, {m: (FUTURE, CONTEXT) for m in MODS})


@pytest.fixture(scope="module")
def released():
    model = perturb(tiny_joint(0), 1, scale=0.2).eval()
    return model, official_from_ours(model)


def test_official_names_and_round_trip(released):
    model, state = released
    assert len(state) == len(model.state_dict()) + 2  # + the two `zeros` buffers
    p = "diff_rgb.diffusion_model."
    # hand-checked names of the published module structure
    for key in (
        p + "input_blocks.0.0.weight",
        p + "time_embed.2.bias",
        p + "input_blocks.1.0.in_layers.2.weight",
        p + "input_blocks.3.1.qkv.weight",
        p + "input_attns.3.proj_out.bias",
        p + "mid_attn.qkv.weight",
        p + "middle_block.2.out_layers.3.weight",
        p + "output_blocks.1.2.emb_layers.1.weight",
        p + "output_attns.1.norm.weight",
        p + "out.2.weight",
        "cross_attns.2.cross_attn.W_q_x.weight",
        "cross_attns.5.norm_2.bias",
        "diff_depth.diffusion_model.input_blocks.3.0.skip_connection.weight",
    ):
        assert key in state, key
    assert state[p + "input_blocks.0.0.weight"].shape == (16, 8, 3, 3)
    mine = model.state_dict()
    assert torch.equal(mine["branches.rgb.input_blocks.3.layers.2.qkv.weight"], state[p + "input_attns.3.qkv.weight"])
    assert torch.equal(
        mine["branches.rgb.input_blocks.3.layers.1.qkv.weight"], state[p + "input_blocks.3.1.qkv.weight"]
    )
    assert torch.equal(mine["branches.rgb.middle_block.layers.3.norm.bias"], state[p + "mid_attn.norm.bias"])
    assert torch.equal(mine["cross.3.query.rgb.weight"], state["cross_attns.2.cross_attn.W_q_x.weight"])
    assert torch.equal(mine["cross.4.value.depth.bias"], state["cross_attns.3.cross_attn.W_v_y.bias"])
    assert torch.equal(mine["cross.6.out.rgb.weight"], state["cross_attns.5.cross_attn.W_x_out.weight"])
    # ours -> official -> ours is the identity
    back = fit_official(state, model, lambda k: official_joint_key(k, model), "file")
    assert back.keys() == mine.keys() and all(torch.equal(back[k], mine[k]) for k in mine)
    # the wrapper's prefix (MMDiffusionWrapper.diffusion_model) is accepted
    wrapped = {f"diffusion_model.{k}": v for k, v in state.items()}
    assert fit_official(wrapped, model, lambda k: official_joint_key(k, model), "file").keys() == mine.keys()


def test_imported_forward_equals_the_official_layout(released):
    model, state = released
    fresh = load_official_joint(state, tiny_joint(seed=5).eval())
    g = torch.Generator().manual_seed(3)
    x = {m: torch.randn(2, 4, FUTURE.length, generator=g) for m in MODS}
    c = {m: torch.randn(2, 4, CONTEXT.length, generator=g) for m in MODS}
    t = torch.tensor([10, 700])
    with torch.no_grad():
        want, got = model(x, t, c), fresh(x, t, c)
    for m in MODS:
        assert float(want[m].abs().max()) > 1e-3  # not the zero-initialised output
        assert float((got[m] - want[m]).norm() / want[m].norm()) < 1e-5


@pytest.mark.parametrize("damage", ["missing", "extra", "shape"])
def test_strict_import_names_file_key_and_shape(released, damage):
    model, state = released
    state = dict(state)
    key = "cross_attns.3.cross_attn.W_v_x.weight"
    if damage == "missing":
        del state[key]
        match = r"syncvp_x\.pth: no key fills cross\.4\.value\.rgb\.weight.*expected shape \(32, 32, 1\)"
    elif damage == "extra":
        state["cross_attns.0.cross_attn.W_q_x.weight"] = torch.zeros(16, 16, 1)  # no STCA after in1 (deep)
        match = r"syncvp_x\.pth: key 'cross_attns\.0\.cross_attn\.W_q_x\.weight' has no place"
    else:
        state[key] = torch.zeros(32, 16, 1)
        match = r"syncvp_x\.pth: key 'cross_attns\.3\.cross_attn\.W_v_x\.weight' has shape \(32, 16, 1\).*expects \(32, 32, 1\)"
    target = tiny_joint(seed=7)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(OfficialCheckpointError, match=match):
        load_official_joint(state, target, "syncvp_x.pth")
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # nothing was loaded


# --------------------------------------------------------------------------------------------
# the presets


def _preset(name: str):
    return params_from_dict(presets.apply(read_yaml(REPO / "params.yaml"), presets.load(name)), name)


@pytest.mark.parametrize("name, dataset, size", [("official_cityscapes", "cityscapes", 128), ("official_bair", "bair", 64)])
def test_official_presets_build_the_released_shapes(name, dataset, size):
    params = _preset(name)
    ds = params.datasets[dataset]
    assert ds.modalities == MODS and (ds.context_frames, ds.future_frames, ds.resolution) == (2, 8, (size, size))
    assert (params.autoencoder.axis_token, params.autoencoder.gray_to_rgb) == ("pvdm", True)
    assert (params.unet.condition_layout, params.joint.stca_layout, params.joint.shared_weights) == (
        "official", "official", False)
    assert (params.sampling.method, params.sampling.steps, params.sampling.eta) == ("ddim", 100, 1.0)
    assert (params.evaluate.batch_size, params.evaluate.trajectories) == (16, 1)
    assert "single" not in params.evaluate.baselines
    if dataset == "cityscapes":
        assert ds.rollout_frames == 28
    # autoencoders: an official-layout state dict of the released sizes (channels 192, 8 layers of
    # 8 heads x 64, axis transformers of 4 x 4 heads, P = 4, C' = 4) fits both roles and modalities
    shapes = {}
    for m, channels in zip(MODS, (3, 1)):
        for role, frames in (("context", 2), ("future", 8)):
            spec = AutoencoderSpec.from_config(params.autoencoder, channels=channels, frames=frames,
                                               resolution=ds.resolution)
            with torch.device("meta"):
                ae = TriplaneAutoencoder(spec)
            state = official_state(3, 192, depth=8, heads=8, hd=64, frames=frames, grid=(size // 4, size // 4),
                                   latent=4, patch=4)
            assert fit_official(state, ae, official_key, "ae").keys() == ae.state_dict().keys()
            shapes.setdefault(m, {})[role] = spec.latent_shape
    assert shapes["rgb"]["future"] == TriplaneShape(4, size // 4, size // 4, 8)
    # the joint model: official shapes of the released UNet (model_channels 256, mult [1, 2], 8 heads)
    with torch.device("meta"):
        joint = build_joint_unet(params.unet, params.joint, {m: (shapes[m]["future"], shapes[m]["context"]) for m in MODS})
    official = official_from_ours(joint)
    p = "diff_depth.diffusion_model."
    expected = {p + "input_blocks.0.0.weight": (256, 8, 3, 3), p + "time_embed.0.weight": (1024, 256),
                p + "input_blocks.3.0.skip_connection.weight": (512, 256, 1, 1), p + "input_attns.3.qkv.weight": (1536, 512, 1),
                p + "output_blocks.2.0.in_layers.2.weight": (256, 768, 3, 3), p + "out.2.weight": (4, 256, 3, 3),
                p + "zeros": (1, 4, shapes["rgb"]["future"].length), "cross_attns.2.cross_attn.W_q_x.weight": (512, 512, 1),
                "cross_attns.5.norm_1.weight": (512,)}
    for key, shape in expected.items():
        assert tuple(official[key].shape) == shape, key
    assert sorted({int(k.split(".")[1]) for k in official if k.startswith("cross_attns.")}) == [2, 3, 4, 5]


# --------------------------------------------------------------------------------------------
# the command


def _write_test_store(paths, name: str, frames: int, size: int) -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (2, frames, size, size, 3)).astype(np.uint8)
    ds = store.build_dataset({"rgb": rgb, "depth": rgb[..., 0].copy()}, dataset=name, split="test")
    store.write_store(paths.store(name, "test"), ds)


def test_import_command_writes_files_evaluation_loads(tiny_params, tmp_path):
    from syncvp.config import RolePair
    from syncvp.models.official_import import import_official
    from syncvp.prediction.load import load_predictor

    ae = dataclasses.replace(tiny_params.autoencoder, width=32, depth=1, heads=2, head_dim=16, ff_mult=4, axis_depth=4,
                             axis_heads=4, axis_head_dim=4, axis_mlp=512, patch_size=4, latent_channels=4,
                             gray_to_rgb=True, axis_token="pvdm")
    unet = UNetConfig(model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4, 2, 1),
                      num_heads=2, norm_groups=4, dropout=0.0, condition_layout="official")
    joint = JointConfig(cross_attention="deep", deep_levels=1, split_planes=True, normalize=True, num_heads=2,
                        shared_weights=False, same_noise=True, stca_layout="official",
                        locality=0.0, cross_inputs=False)
    params = with_pipeline(tiny_params, autoencoder=ae, unet=unet, joint=joint,
                           diffusion=_preset("official_cityscapes").diffusion)
    ds = params.datasets["synthetic"]
    _write_test_store(params.paths, "synthetic", ds.context_frames + ds.rollout_frames, 16)
    released = tmp_path / "released"
    released.mkdir()
    names = released_names("synthetic", ds.context_frames, ds.future_frames)
    assert names["ae-depth-future"] == f"ae_depth_{ds.future_frames}f_synthetic.pth"
    aes = {}
    for i, (key, name) in enumerate(names.items()):
        if key == "joint":
            continue
        frames = ds.context_frames if key.endswith("context") else ds.future_frames
        aes[key] = official_state(3, 32, depth=1, heads=2, hd=16, frames=frames, grid=(4, 4), latent=4, patch=4)
        torch.save(aes[key], released / name)
    shapes = {m: (TriplaneShape(4, 4, 4, ds.future_frames), TriplaneShape(4, 4, 4, ds.context_frames)) for m in MODS}
    model = perturb(build_joint_unet(unet, joint, shapes), 2, scale=0.2).eval()
    torch.save({f"diffusion_model.{k}": v for k, v in official_from_ours(model).items()}, released / names["joint"])

    written = import_official("synthetic", params, released, log=lambda line: None)
    paths = params.paths
    assert len(written) == 4 + 2 + 1 and all(p.is_file() for p in written)
    f = load_diffusion_model(paths.joint("synthetic").model, kind="joint")
    assert f.meta["source"] == "official" and f.unet.condition_layout == "official"
    g = torch.Generator().manual_seed(0)
    x = {m: torch.randn(1, 4, shapes[m][0].length, generator=g) for m in MODS}
    c = {m: torch.randn(1, 4, shapes[m][1].length, generator=g) for m in MODS}
    t = torch.tensor([500])
    with torch.no_grad():
        want, got = model(x, t, c), f.build()(x, t, c)
    for m in MODS:
        assert float((got[m] - want[m]).norm() / want[m].norm()) < 1e-5
    branch = load_diffusion_model(paths.single("synthetic", "depth").model, kind="single")
    assert branch.meta["source"] == "official-joint-branch"
    depth = load_autoencoder(paths.autoencoder("synthetic", "depth", "future").model)
    assert depth.spec.channels == 1 and depth.spec.net_channels == 3
    assert torch.equal(depth.state_dict()["encoder.blocks.0.ff.up.weight"],
                       aes["ae-depth-future"]["encoder.layers.0.2.fn.net.0.weight"])
    pairs = {m: RolePair(context=paths.autoencoder("synthetic", m, "context").model,
                         future=paths.autoencoder("synthetic", m, "future").model) for m in MODS}
    assert load_predictor(paths.joint("synthetic").model, pairs, params.sampling) is not None

    # a damaged file fails before anything is written
    state = torch.load(released / names["ae-rgb-context"])
    state["xy_token"] = torch.zeros(1, 1, 16)
    torch.save(state, released / names["ae-rgb-context"])
    for p in written:
        p.unlink()
    with pytest.raises(OfficialCheckpointError, match=r"ae_rgb_2f_synthetic\.pth: key 'xy_token' has shape \(1, 1, 16\)"):
        import_official("synthetic", params, released, log=lambda line: None)
    assert not any(p.exists() for p in written)


def test_import_command_refuses_params_not_describing_the_release(tmp_path, capsys):
    assert main(["import-official", "--dataset", "synthetic", "--checkpoints", str(tmp_path),
                 "--params", str(REPO / "params.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: autoencoder.axis_token must be pvdm") and "preset official_synthetic" in err
    assert len(err.splitlines()) == 1
