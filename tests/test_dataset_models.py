"""`datasets.<name>.models`: a dataset's own changes to the global `autoencoder` / `unet` sections,
validated when params load and handed to that dataset's training stages."""

from __future__ import annotations

import copy

import pytest

from stages import train_autoencoder, train_joint, train_single
from stages._entry import resolve
from syncvp.config import ParamsError, params_from_dict
from syncvp.config.loader import read_yaml
from tests.conftest import REPO


def params_with(models: dict | None, dataset: str = "synthetic"):
    data = copy.deepcopy(read_yaml(REPO / "params.yaml"))
    data["datasets"][dataset]["models"] = models
    return params_from_dict(data, "params.yaml")


def test_a_dataset_changes_only_the_keys_it_names():
    p = params_with({"autoencoder": {"patch_size": 8, "latent_channels": 16}, "unet": {"model_channels": 48}})
    ae, unet = p.autoencoder_for("synthetic"), p.unet_for("synthetic")
    assert (ae.patch_size, ae.latent_channels, ae.width) == (8, 16, p.autoencoder.width)
    assert (p.autoencoder.patch_size, p.autoencoder.latent_channels) == (4, 8)
    assert unet.model_channels == 48 and unet.channel_mult == p.unet.channel_mult and p.unet.model_channels == 32
    assert p.autoencoder_for("era5_synthetic") is p.autoencoder and p.unet_for("era5_synthetic") is p.unet
    assert params_with({"autoencoder": None, "unet": {}}).autoencoder_for("synthetic") == p.autoencoder


def test_the_stages_of_that_dataset_get_the_merged_sections():
    p = params_with({"autoencoder": {"latent_channels": 16}, "unet": {"model_channels": 48}})
    got = resolve(train_autoencoder.SPEC, p, "synthetic-rgb-future")["autoencoder"]
    assert got == p.autoencoder_for("synthetic") and got.latent_channels == 16
    assert resolve(train_single.SPEC, p, "synthetic-depth")["unet"].model_channels == 48
    assert resolve(train_joint.SPEC, p, "synthetic")["unet"].model_channels == 48


@pytest.mark.parametrize(
    "models, match",
    [
        (
            {"autoencoder": {"patchsize": 8}},
            r"datasets.synthetic.models.autoencoder.patchsize: is not a key of the `autoencoder`",
        ),
        ({"unet": {"num_heads": "4"}}, r"datasets.synthetic.models.unet.num_heads: expected an integer"),
        ({"autoencoder": {"head_dim": 6}}, r"datasets.synthetic.models.autoencoder.head_dim: "),
        (
            {"autoencoder": {"patch_size": 5}},
            r"datasets.synthetic.models.autoencoder.patch_size: 5 does not divide the resolution 32x32",
        ),
        ({"autoencoder": 3}, r"datasets.synthetic.models.autoencoder: expected a mapping"),
    ],
)
def test_bad_changes_fail_when_params_load_naming_the_key(models, match):
    with pytest.raises(ParamsError, match=rf"^params.yaml: {match}"):
        params_with({"autoencoder": None, "unet": None, **models})
    with pytest.raises(ParamsError, match=r"datasets.synthetic.models.unet: is missing \(every key must be given"):
        params_with({"autoencoder": {"patch_size": 8}})
