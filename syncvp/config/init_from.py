"""`init_from` of the training sections: start a training stage from models trained elsewhere.

A fine-tune (the paper's OpenDV-YouTube model starts from a Cityscapes one) names the `models`
folder of another run (its `paths.models`, or a copy of it) and the dataset whose models there to
start from. Each unit then starts from the same unit of that dataset: `<models>/<dataset>-<modality>-<role>/autoencoder.pt`,
`<models>/<dataset>-<modality>/diffusion.pt` or `<models>/<dataset>/joint.pt`. The file must
hold the architecture the unit trains now (checked, with the differing keys named, before any work).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syncvp.config.loader import require


@dataclass(frozen=True, kw_only=True)
class InitFrom:
    """Where `init: checkpoint` takes its weights.

    Attributes:
        models: a models folder laid out like `paths.models` (relative to the project root or absolute).
        dataset: the dataset name the models in that folder were trained on.
    """

    models: Path
    dataset: str

    def __post_init__(self) -> None:
        require(str(self.models) not in ("", "."), "models", "must name the folder of the trained models")
        require(
            bool(self.dataset) and "-" not in self.dataset,
            "dataset",
            f"must be a dataset name (no '-'), got {self.dataset!r}",
        )


def check_init(init: str, init_from: InitFrom | None) -> None:
    """`init_from` is set exactly when `init` is checkpoint."""
    if init == "checkpoint":
        require(init_from is not None, "init_from", "init is checkpoint: give {models: <folder>, dataset: <name>}")
    else:
        require(init_from is None, "init_from", f"must be null unless init is checkpoint (init is {init})")
