"""Side by side with the authors' SyncVP code: the paper-config joint model on this machine, in one run.

Both implementations are built at the paper's Cityscapes configuration (latent 4 x 1536 from
8 frames of 128 x 128, context 4 x 1152 from 2 frames; two 256-channel UNets, channel_mult
[1, 2], one residual block per level, attention everywhere, 8 heads, deep STCA, same noise; 123.4 M
parameters each) at batch 1, and timed in the same process, alternating ours and theirs so that
both see the same load:

- joint forward: one denoising forward under no_grad (what each of 100 DDIM steps costs);
- joint train step: the joint eps loss with shared noise, backward and an AdamW step, as each
  training loop does it. Theirs: `MMDDPM.p_losses` (their `losses/ddpm.py`) through their
  `MMDiffusionWrapper(MultiModalUnet)`, plain `torch.optim.AdamW`, no DDP (one process). Ours:
  `joint_training_loss`, the gradient norm `fit` logs, and `syncvp.training.optim.adamw`, the
  optimizer the pipeline builds;
- with `--single`, the stage-1 UNet's forward and train step too (their `UNetModel` + `DDPM`);
- with `--bf16`, our joint forward under bf16 autocast (`sampling.precision: bf16`) against their
  fp32 forward (their code has no reduced-precision sampling), on a copy of the network as
  `load_predictor` hands it to the sampler (frozen, linear and convolution weights stored in
  bf16: `syncvp.prediction.load.precast_weights`);
- with `--compile`, our joint forward compiled as the sampler compiles it with `run.compile`
  (inductor, frozen: `syncvp.training.fastpath.guard_compile`), on a copy of the model; with
  `--bf16` too, also under bf16 autocast (on a precast copy). Compiling takes one to two minutes per row on 2 cores,
  spent in the warm-up call.

The authors' code is not part of this project and is not downloaded: pass a checkout of
https://github.com/PallottaEnrico/SyncVP with `--authors-repo` (their models need `einops`; put it
on PYTHONPATH if the project's environment lacks it, e.g. `pip install --target /tmp/ein einops`).

    PYTHONPATH=/tmp/ein python -m benchmarks.authors --authors-repo ~/src/SyncVP --threads 2
    python -m benchmarks.authors --authors-repo ~/src/SyncVP --threads 2 --single --repeats 5

Printed: the median seconds of each side (after one warm-up each), our speed-up (theirs / ours),
the targets of the speed issue (train step >= 1.5x, forward >= 2x) and the minor page faults per
call. Their attention materialises [heads, L, L] score tensors (75 MB at L = 1536) that glibc
serves with fresh mmaps by default, so their calls spend much of their time faulting pages in;
`--malloc tuned` reruns the comparison with glibc keeping freed memory (MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ at 1 GB), the authors' code at its best. Report both.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from benchmarks.diffusion import CONTEXT, FUTURE, MODALITIES, REPO, paper_sections
from syncvp.diffusion.factory import build_schedule
from syncvp.diffusion.joint import draw_joint_noise, joint_training_loss
from syncvp.diffusion.process import sample_timesteps, training_loss
from syncvp.models.factory import build_joint_unet, build_unet
from syncvp.models.unet import count_parameters
from syncvp.prediction.load import precast_weights
from syncvp.training.fastpath import prepare_model
from syncvp.training.optim import adamw

TARGETS = {
    "joint train step": 1.5,
    "joint forward": 2.0,
    "joint forward, ours bf16": 2.0,
    "joint forward, ours compiled": 2.0,
    "joint forward, ours compiled bf16": 2.0,
}  # speed-up over the authors' code
FRAMES = 8  # future frames of the paper's 8x128x128 autoencoder


MMAP_ENV, TRIM_ENV, TUNED = "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", str(1 << 30)


def malloc_state() -> str:
    """How glibc's allocator was set up for this process."""
    tuned = {k: os.environ[k] for k in (MMAP_ENV, TRIM_ENV) if k in os.environ}
    return ", ".join(f"{k}={v}" for k, v in tuned.items()) or "glibc defaults"


class AuthorsError(RuntimeError):
    pass


def import_authors(repo: Path):
    """The authors' model and loss classes, imported from a checkout at `repo`."""
    if not (repo / "models" / "ddpm" / "multimodal.py").is_file():
        raise AuthorsError(
            f"{repo} is not a checkout of the authors' SyncVP code (no models/ddpm/multimodal.py); clone "
            "https://github.com/PallottaEnrico/SyncVP and pass its folder with --authors-repo"
        )
    try:
        import einops  # noqa: F401 - their models import it
    except ImportError as exc:
        raise AuthorsError(
            "the authors' models need einops: `pip install --target /tmp/ein einops` and run with PYTHONPATH=/tmp/ein"
        ) from exc
    sys.path.insert(0, str(repo))
    try:
        from losses.ddpm import DDPM, MMDDPM
        from models.ddpm.multimodal import MMDiffusionWrapper, MultiModalUnet
        from models.ddpm.unet import DiffusionWrapper, UNetModel
    finally:
        sys.path.remove(str(repo))
    return DDPM, MMDDPM, MMDiffusionWrapper, MultiModalUnet, DiffusionWrapper, UNetModel


class _Replica(nn.Module):
    """What their DDPM expects around the model (`.module`, as DistributedDataParallel has), without DDP."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args):
        return self.module(*args)


def authors_config() -> tuple[dict, dict]:
    """Their configs/diffusion/sync_128x128.yaml as the two dicts their constructors take."""
    unet = dict(
        image_size=32,
        in_channels=4,
        out_channels=4,
        model_channels=256,
        attention_resolutions=[4, 2, 1],
        num_res_blocks=1,
        channel_mult=[1, 2],
        num_heads=8,
        use_scale_shift_norm=True,
        resblock_updown=True,
    )
    cross = dict(normalize=True, skip_conn=True, cross_attn="deep", split_attn=True, num_heads=8)
    return unet, cross


def quiet(fn: Callable):
    """Call `fn` with stdout swallowed (their DDPM prints on construction)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn()


def minor_faults() -> int:
    """Minor page faults of this process so far (pages the kernel had to map and zero)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def side_by_side(pairs: dict[str, tuple[Callable, Callable]], repeats: int, clock) -> dict[str, tuple[float, ...]]:
    """{work: (ours s, theirs s, ours faults, theirs faults)}: median seconds and mean minor page
    faults per call; one warm-up each, then ours and theirs alternate."""
    out = {}
    for work, (ours, theirs) in pairs.items():
        ours()
        theirs()
        times, faults = ([], []), [0, 0]
        for _ in range(repeats):
            for k, fn in enumerate((ours, theirs)):
                before, start = minor_faults(), clock()
                fn()
                times[k].append(clock() - start)
                faults[k] += minor_faults() - before
        out[work] = (*(statistics.median(t) for t in times), *(f / repeats for f in faults))
    return out


def joint_pairs(
    repo: Path, params: Path, train: bool, bf16: bool = False, compile: bool = False, warn: Callable = print
) -> tuple[dict, int, int]:
    DDPM, MMDDPM, MMDiffusionWrapper, MultiModalUnet, _, _ = import_authors(repo)
    unet_cfg, diffusion, joint_cfg = paper_sections(params)
    ours = build_joint_unet(unet_cfg, joint_cfg, {m: (FUTURE, CONTEXT) for m in MODALITIES})
    a_unet, a_cross = authors_config()
    theirs = MMDiffusionWrapper(MultiModalUnet(a_unet, a_unet, FRAMES, a_cross, False))
    criterion = quiet(
        lambda: MMDDPM(
            _Replica(theirs), channels=4, image_size=32, linear_start=0.0015, linear_end=0.0195, w=0, same_noise=True
        )
    )
    g = torch.Generator().manual_seed(0)
    x0 = {m: torch.rand(1, FUTURE.channels, FUTURE.length, generator=g) * 2 - 1 for m in MODALITIES}
    c = {m: torch.rand(1, CONTEXT.channels, CONTEXT.length, generator=g) * 2 - 1 for m in MODALITIES}
    t = torch.full((1,), 500)
    rgb, depth = (x0[m] for m in MODALITIES)
    c_rgb, c_depth = (c[m] for m in MODALITIES)

    def ours_forward():
        with torch.no_grad():
            ours(x0, t, c)

    def theirs_forward():
        with torch.no_grad():
            theirs(rgb, depth, c_rgb, c_depth, t)

    def sampler_copy(precision: str):
        """The network as `load_predictor` hands it to the sampler: frozen, and with bf16 sampling
        its linear and convolution weights stored in bf16 (`precast_weights`)."""
        net = copy.deepcopy(ours).requires_grad_(False)
        if precision == "bf16":
            precast_weights(net)
        return net

    def bf16_call(net):
        def call():
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                net(x0, t, c)

        return call

    pairs = {"joint forward": (ours_forward, theirs_forward)}
    if bf16:
        pairs["joint forward, ours bf16"] = (bf16_call(sampler_copy("bf16")), theirs_forward)
    if compile:
        compiled = prepare_model(sampler_copy("fp32"), channels_last=False, compile=True, frozen=True, warn=warn)

        def ours_compiled():
            with torch.no_grad():
                compiled(x0, t, c)

        pairs["joint forward, ours compiled"] = (ours_compiled, theirs_forward)
        if bf16:
            net = prepare_model(sampler_copy("bf16"), channels_last=False, compile=True, frozen=True, warn=warn)
            pairs["joint forward, ours compiled bf16"] = (bf16_call(net), theirs_forward)
    if train:
        schedule = build_schedule(diffusion)
        our_opt = adamw(ours.parameters(), lr=1e-5, betas=(0.9, 0.999), weight_decay=0.01)
        their_opt = torch.optim.AdamW(theirs.parameters(), lr=1e-5)

        def ours_step():
            tt, noise = draw_joint_noise(x0, 1000, g, same_noise=True)
            loss = joint_training_loss(lambda z, s: ours(z, s, c), schedule, x0, t=tt, noise=noise).total
            our_opt.zero_grad(set_to_none=True)
            loss.backward()
            float(torch.nn.utils.get_total_norm([p.grad for p in ours.parameters() if p.grad is not None]))
            our_opt.step()

        def theirs_step():
            (loss_rgb, loss_depth, _), _ = criterion(rgb, depth, c_rgb, c_depth)
            their_opt.zero_grad(set_to_none=True)
            (loss_rgb + loss_depth).backward()
            their_opt.step()

        pairs["joint train step"] = (ours_step, theirs_step)
    return pairs, count_parameters(ours), count_parameters(theirs)


def single_pairs(repo: Path, params: Path, train: bool) -> tuple[dict, int, int]:
    DDPM, _, _, _, DiffusionWrapper, UNetModel = import_authors(repo)
    unet_cfg, diffusion, _ = paper_sections(params)
    ours = build_unet(unet_cfg, FUTURE, CONTEXT)
    a_unet, _ = authors_config()
    theirs = DiffusionWrapper(UNetModel(**a_unet, frames=FRAMES))
    criterion = quiet(
        lambda: DDPM(_Replica(theirs), channels=4, image_size=32, linear_start=0.0015, linear_end=0.0195, w=0)
    )
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(1, FUTURE.channels, FUTURE.length, generator=g) * 2 - 1
    c = torch.rand(1, CONTEXT.channels, CONTEXT.length, generator=g) * 2 - 1
    t = torch.full((1,), 500)

    def ours_forward():
        with torch.no_grad():
            ours(x0, t, c)

    def theirs_forward():
        with torch.no_grad():
            theirs(x0, c, t)

    pairs = {"UNet forward": (ours_forward, theirs_forward)}
    if train:
        schedule = build_schedule(diffusion)
        our_opt = adamw(ours.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01)
        their_opt = torch.optim.AdamW(theirs.parameters(), lr=1e-4)

        def ours_step():
            loss = training_loss(
                lambda z, tt: ours(z, tt, c),
                schedule,
                x0,
                t=sample_timesteps(1, 1000, g),
                noise=torch.randn(x0.shape, generator=g),
            ).mean()
            our_opt.zero_grad(set_to_none=True)
            loss.backward()
            float(torch.nn.utils.get_total_norm([p.grad for p in ours.parameters() if p.grad is not None]))
            our_opt.step()

        def theirs_step():
            (loss, _), _ = criterion(x0, c)
            their_opt.zero_grad(set_to_none=True)
            loss.backward()
            their_opt.step()

        pairs["UNet train step"] = (ours_step, theirs_step)
    return pairs, count_parameters(ours), count_parameters(theirs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--authors-repo", type=Path, required=True, help="a checkout of PallottaEnrico/SyncVP")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-train", action="store_true", help="forward rows only")
    parser.add_argument("--single", action="store_true", help="also the stage-1 UNet (their UNetModel + DDPM)")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="also our joint forward under bf16 autocast (sampling.precision: bf16) against their fp32 forward",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also our joint forward compiled as the sampler compiles it (run.compile: inductor, frozen)",
    )
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="cpu = process CPU time")
    parser.add_argument(
        "--malloc",
        choices=["default", "tuned"],
        default="default",
        help="tuned: rerun this script with glibc's mmap and trim thresholds at 1 GB, so that freed "
        "blocks are reused instead of returned to the kernel and faulted in again at the next call",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    if args.malloc == "tuned" and os.environ.get(MMAP_ENV) != TUNED:
        env = {**os.environ, MMAP_ENV: TUNED, TRIM_ENV: TUNED}
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.authors", *sys.argv[1:]], env)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.manual_seed(0)
    try:
        rows, counts = {}, []
        if args.single:
            pairs, n_ours, n_theirs = single_pairs(args.authors_repo.expanduser(), args.params, not args.no_train)
            counts.append(("stage-1 UNet", n_ours, n_theirs))
            rows |= side_by_side(pairs, args.repeats, clock)
        pairs, n_ours, n_theirs = joint_pairs(
            args.authors_repo.expanduser(), args.params, not args.no_train, args.bf16, args.compile
        )
        counts.append(("joint model", n_ours, n_theirs))
        rows |= side_by_side(pairs, args.repeats, clock)
    except AuthorsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"paper config, batch 1: torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock, "
        f"median of {args.repeats} after a warm-up, ours and the authors' alternating"
    )
    for name, n_ours, n_theirs in counts:
        print(f"parameters, {name}: ours {n_ours / 1e6:.2f} M, authors' {n_theirs / 1e6:.2f} M")
    print(f"malloc: {malloc_state()}")
    width = max(len(w) for w in rows)
    print(
        f"\n{'work':{width}s} {'ours s':>8s} {'authors s':>10s} {'speed-up':>9s} {'target':>7s} "
        f"{'page faults/call ours':>22s} {'authors':>8s}"
    )
    for work, (ours, theirs, f_ours, f_theirs) in rows.items():
        target = f"{TARGETS[work]:.1f}x" if work in TARGETS else ""
        print(
            f"{work:{width}s} {ours:8.3f} {theirs:10.3f} {theirs / ours:8.2f}x {target:>7s} "
            f"{f_ours:22.0f} {f_theirs:8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
