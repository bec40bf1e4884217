"""Every GPU benchmark and GPU check of the "Speed" issue in one run, for a short GPU lease.

Each step runs in its own subprocess with its own timeout (a hang or an OOM kills that step
only) and appends JSON lines to DIR/gpu_suite.jsonl as it goes, one per measured row, flushed at
once, so a killed step still leaves the rows it measured; the parent then appends one line per
step (status ok / failed / timeout / skipped, seconds). Steps still waiting when --budget-s runs
out are recorded as skipped. Each step's output goes to DIR/gpu_suite.log; a short table is
printed at the end.

Steps (paper configuration, bf16 autocast, SDPA, channels-last; --smoke: the tiny configuration
of params.yaml on CPU, fp32, tiny step counts, to test the suite's structure):

- env: torch, device, assumed dense bf16 peak, measured bf16 matmul TFLOP/s;
- train_joint / train_unet / train_autoencoder: training steps through the real loop (`fit`) at
  batch 8, 32 and doubling from 64 while it fits and time is left: samples/s, FLOPs per step
  (torch.utils.flop_counter.FlopCounterMode), achieved TFLOP/s and share of peak, peak memory;
- sampling: one 8-frame joint chunk with 100 DDIM steps at batch 1 and 16, eager and through a
  CUDA graph (`syncvp.training.fastpath.GraphedDenoiser`), with the check graph == eager;
- sampling_compiled: the same compiled (`guard_compile`, frozen as `run.compile` compiles the
  sampler's denoiser), then compiled and replayed from a CUDA graph (`run.compile` with
  `run.cuda_graphs`), each with the check against eager;
- checkpointing: joint training at batch 8 with and without activation checkpointing
  (benchmarks.checkpointing): step time, the memory held for the backward pass and peak memory
  (torch.cuda.max_memory_allocated);
- compile_joint: a compiled joint training step at paper config (a 3-minute cap): pass / fail,
  fell back to eager or not;
- gpu_tests: the project's `gpu`-marked tests (pytest -m gpu on the files that hold them);
- launches: profiler events (CPU ops, CUDA kernels) of one joint forward, eager and graphed
  (benchmarks.launches);
- optimizer: one AdamW step on the joint model's parameters per implementation (per-tensor
  loop, foreach, fused, and the one `syncvp.training.optim.adamw` takes: fused on CUDA), with
  the difference from the loop's result (benchmarks.optimizer);
- compile_regional: the joint training step with each block compiled on its own instead of the
  whole network (compile time and step time; an experiment, not a pipeline option).

    python -m benchmarks.gpu_suite --out gpu-run                  # on a GPU machine
    python -m benchmarks.gpu_suite --out /tmp/s --smoke            # structure check on CPU
    python -m benchmarks.gpu_suite --out /tmp/s --smoke --steps env,train_joint --timeout env=30
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
JSONL, LOG = "gpu_suite.jsonl", "gpu_suite.log"
SAMPLING_STEPS = 100
KNOWN_PEAK = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16 TFLOP/s (datasheets)
TARGET_SHARE = 0.40  # the training target: >= 40 % of the chip's dense bf16 peak
TARGET_SAMPLING_S = {1: 1.0, 16: 2.0}  # one 8-frame chunk, 100 DDIM steps, by batch
TOLERANCE = {  # relative L2 difference of one denoiser call's output, fast vs plain
    "graph": 1e-3,  # the same kernels replayed: expected 0, allow reduction-order noise
    "compiled": 5e-2,  # inductor fuses and reorders bf16 arithmetic (CPU, paper config: 0.019)
    "compiled+graph": 5e-2,  # the compiled kernels replayed: as compiled
    "precast": 1e-6,  # bf16 weights stored once vs cast by autocast at each call: the same values
}
# The final samples' max difference is reported too, for information only: 100 DDIM steps of a
# random-weight model amplify any rounding difference (measured on CPU at the paper config: bf16
# against fp32 eager 1.45, compiled bf16 against eager bf16 0.95, in latent units of range [-1, 1]).
ZERO_FILL_STD = 0.02  # zero-initialised parameters get this noise, so the network's output is not 0


@dataclasses.dataclass
class Ctx:
    """What a step gets: where to write, the mode, and when it must stop by itself."""

    out: Path
    step: str
    smoke: bool
    deadline: float  # time.monotonic() by which the step should have returned
    peak_tflops: float | None
    compile_backend: str

    def emit(self, **row) -> dict:
        row = {"kind": "row", "step": self.step, **row}
        append(self.out / JSONL, row)
        print(json.dumps(row), flush=True)
        return row

    @property
    def size(self) -> str:
        return "tiny" if self.smoke else "paper"

    @property
    def device(self):
        import torch

        return torch.device("cpu" if self.smoke or not torch.cuda.is_available() else "cuda")

    def left(self) -> float:
        return self.deadline - time.monotonic()


def append(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --------------------------------------------------------------------------------------------
# Helpers run inside a step's process


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_mib(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


def _reset_peak(device) -> None:
    import gc

    import torch

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def peak_tflops(ctx: Ctx) -> float | None:
    import torch

    if ctx.peak_tflops:
        return ctx.peak_tflops
    if ctx.device.type != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in KNOWN_PEAK.items() if k in name), None)


class Trainer:
    """One model of a training row (scale.py's tasks) trained through `fit` at varying batch."""

    def __init__(self, ctx: Ctx, work: str, *, compile: bool = False):
        from benchmarks.scale import Row, _train_task
        from syncvp.training.fastpath import prepare_model
        from syncvp.training.optim import adamw

        self.ctx, self.work, self.device = ctx, work, ctx.device
        self.row = Row(work, ctx.size, True, self.device.type, 0, 1, 1, compile)
        self.warnings: list[str] = []
        model, _ = _train_task(self.row, "cpu", batch=1)
        model = model.to(self.device)
        if compile:
            from syncvp.training import fastpath

            fastpath.COMPILE_BACKEND = ctx.compile_backend
        prepare_model(model, channels_last=True, compile=compile, warn=self.warnings.append)
        self.model = model
        self.optimizer = adamw(model.parameters(), lr=1e-5, betas=(0.9, 0.999), weight_decay=0.0)
        self.params = sum(p.numel() for p in model.parameters())
        self.flops_per_sample: float | None = None

    def steps(self, batch: int, n: int, *, count_flops: bool = False) -> dict:
        """One warm-up step then `n` timed ones at `batch`: median seconds per step."""
        import itertools

        from torch.utils.flop_counter import FlopCounterMode

        from benchmarks.scale import _train_task
        from syncvp.training.loop import Update, fit
        from syncvp.training.state import TrainState

        _, loss = _train_task(self.row, self.device, batch=batch, model=self.model)
        state = TrainState(models={"m": self.model}, optimizers={"m": self.optimizer})
        update = Update("m", lambda b, s: (loss(b, s), {}), clip_groups=[list(self.model.parameters())])
        stamps: list[float] = []
        record = lambda st, m: (_sync(self.device), stamps.append(time.perf_counter()))  # noqa: E731
        run = dict(device=self.device, amp=True, show_bar=False)
        start = time.perf_counter()
        fit(state, [update], itertools.repeat(None), total_steps=1 + n, callbacks=[record], **run)
        out = {
            "first_step_s": stamps[0] - start,
            "step_s": statistics.median(b - a for a, b in zip(stamps, stamps[1:])) if n > 1 else stamps[-1] - stamps[0],
        }
        if count_flops:
            with FlopCounterMode(display=False) as counter:
                fit(state, [update], itertools.repeat(None), total_steps=state.step + 1, **run)
            self.flops_per_sample = counter.get_total_flops() / batch
        return out

    def row_at(self, batch: int, n: int) -> dict:
        _reset_peak(self.device)
        res = self.steps(batch, n, count_flops=self.flops_per_sample is None)
        flops = self.flops_per_sample * batch
        peak = peak_tflops(self.ctx)
        tflops = flops / res["step_s"] / 1e12
        group = self.optimizer.param_groups[0]
        return self.ctx.emit(
            work=self.work,
            size=self.ctx.size,
            params=self.params,
            optimizer="fused" if group["fused"] else "foreach" if group["foreach"] else "loop",
            batch=batch,
            steps=n,
            **res,
            samples_per_s=batch / res["step_s"],
            flops_per_step=flops,
            tflops=tflops,
            peak_tflops=peak,
            share_of_peak=tflops / peak if peak else None,
            meets_target=tflops / peak >= TARGET_SHARE if peak else None,
            peak_mib=_peak_mib(self.device),
        )


def train_rows(ctx: Ctx, work: str) -> None:
    """Batch 8 and 32, then doubling while it fits, each step stays under the cap and time is left."""
    fixed, probe_from, probe_max, n, cap_s = ([1, 2], 4, 8, 2, 5.0) if ctx.smoke else ([8, 32], 64, 2048, 5, 3.0)
    trainer = Trainer(ctx, work)
    largest, per_step = None, 0.0
    queue = list(fixed)
    while True:
        if queue:
            batch, probing = queue.pop(0), False
        else:
            batch, probing = max(probe_from, 2 * (largest or 0)), True
            if batch > probe_max:
                break
            # a step at twice the batch takes about twice as long: (2 + n) of them must fit
            if per_step * 2 * (2 + n) * 1.5 > ctx.left():
                ctx.emit(work=work, batch=batch, stopped="time: the next probe would not finish")
                break
        try:
            row = trainer.row_at(batch, n)
        except Exception as exc:  # noqa: BLE001
            if not _is_oom(exc):
                raise
            ctx.emit(work=work, batch=batch, oom=True, error=str(exc).splitlines()[0][:200])
            _reset_peak(trainer.device)
            break
        largest, per_step = batch, row["step_s"]
        if probing and per_step > cap_s:
            break
    ctx.emit(work=work, largest_batch=largest, probe_max=probe_max)


# --------------------------------------------------------------------------------------------
# Sampling


class Chunk:
    """One joint 8-frame chunk of DDIM sampling (eta 1, the paper's) at a given batch."""

    def __init__(self, ctx: Ctx, *, compile: bool = False):
        import torch

        from benchmarks.scale import _shapes
        from syncvp.diffusion.factory import build_schedule
        from syncvp.diffusion.samplers import Sampler
        from syncvp.models.factory import build_joint_unet
        from syncvp.prediction.load import precast_weights
        from syncvp.training.fastpath import prepare_model

        self.ctx, self.device = ctx, ctx.device
        _, unet_cfg, diffusion, joint_cfg, self.future, self.context = _shapes(ctx.size)
        self.mods = ("rgb", "depth")
        torch.manual_seed(0)
        model = build_joint_unet(unet_cfg, joint_cfg, {m: (self.future, self.context) for m in self.mods})
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():  # a fresh model's zero-initialised output layers would predict 0 for every input
            for p in model.parameters():
                if not p.any():
                    p.copy_(ZERO_FILL_STD * torch.randn(p.shape, generator=g))
        # as load_predictor hands the network to the sampler: frozen; for bf16 sampling a copy
        # whose linear and convolution weights are stored in bf16 (precast_weights)
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.per_call = copy.deepcopy(self.model)  # bf16 by autocast's cast at every call
        self.bf16 = copy.deepcopy(self.model)
        precast_weights(self.bf16)
        self.warnings: list[str] = []
        if compile:
            from syncvp.training import fastpath

            fastpath.COMPILE_BACKEND = ctx.compile_backend
        # frozen, as run.compile compiles the sampler's denoiser (load_predictor); each network
        # compiles at its first call
        for net in (self.model, self.bf16):
            prepare_model(net, channels_last=True, compile=compile, frozen=True, warn=self.warnings.append)
        prepare_model(self.per_call, channels_last=True, compile=False)
        self.steps = 2 if ctx.smoke else SAMPLING_STEPS
        self.sampler = Sampler(
            schedule=build_schedule(diffusion),
            prediction=diffusion.prediction,
            method="ddim",
            steps=self.steps,
            eta=1.0,
            clip_x0=True,
            rederive_eps=False,
            same_noise=True,
        )

    def denoiser(self, batch: int, *, amp: bool = True, graph: bool = False, precast: bool = True):
        """The sampler's denoiser at `batch`: bf16 autocast on CUDA with `amp` (the precast
        network, or with precast=False the fp32 one cast at every call), else fp32."""
        import torch

        g = torch.Generator().manual_seed(2)
        c = {m: torch.rand(batch, self.context.channels, self.context.length, generator=g) * 2 - 1 for m in self.mods}
        c = {m: v.to(self.device) for m, v in c.items()}
        on = amp and self.device.type == "cuda"
        net = (self.bf16 if precast else self.per_call) if on else self.model

        def fn(z, t):
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on, cache_enabled=False):
                return net(z, t, c)

        if not graph:
            return fn
        from syncvp.training.fastpath import GraphedDenoiser

        z = {m: torch.zeros(batch, self.future.channels, self.future.length, device=self.device) for m in self.mods}
        t = torch.zeros(batch, dtype=torch.long, device=self.device)
        return GraphedDenoiser(fn, z, t, warn=self.warnings.append)

    def sample(self, denoiser, batch: int):
        import torch

        with torch.no_grad():
            out = self.sampler.sample(
                denoiser,
                {m: (batch, self.future.channels, self.future.length) for m in self.mods},
                generator=torch.Generator().manual_seed(1),
                device=self.device,
            ).sample
        _sync(self.device)
        return out

    def time(self, denoiser, batch: int, repeats: int) -> tuple[dict, dict]:
        start = time.perf_counter()
        out = self.sample(denoiser, batch)  # warm-up (compiles, if compiled)
        first = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.sample(denoiser, batch)
            times.append(time.perf_counter() - start)
        res = {"first_s": first, "seconds": statistics.median(times), "runs": len(times)}
        target = TARGET_SAMPLING_S.get(batch) if self.steps == SAMPLING_STEPS else None
        if target is not None:
            res.update(target_s=target, meets_target=res["seconds"] <= target)
        return res, out


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _relative(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).norm() / b[k].float().norm().clamp_min(1e-12)) for k in a)


def _check(
    ctx: Ctx,
    path: str,
    batch: int,
    fast,
    plain,
    chunk: "Chunk",
    fast_sample: dict,
    plain_sample: dict,
    against: str = "eager",
    **extra,
):
    """Pass / fail on one call of the fast denoiser against the plain one (the same noisy input,
    t = 500); the final samples' difference is reported alongside, for information."""
    import torch

    g = torch.Generator().manual_seed(3)
    z = {m: torch.randn(batch, chunk.future.channels, chunk.future.length, generator=g) for m in chunk.mods}
    z = {m: v.to(chunk.device) for m, v in z.items()}
    t = torch.full((batch,), 500, dtype=torch.long, device=chunk.device)
    with torch.no_grad():
        rel = _relative(fast(z, t), plain(z, t))
    tol = TOLERANCE[path]
    ctx.emit(
        kind="check",
        check=f"{path} denoiser == {against} denoiser (one call, relative L2)",
        batch=batch,
        relative_l2=rel,
        tolerance=tol,
        passed=rel <= tol,
        sample_max_abs_diff=_max_diff(fast_sample, plain_sample),
        **extra,
    )


def sampling(ctx: Ctx) -> None:
    chunk = Chunk(ctx)
    repeats = 1 if ctx.smoke else 3
    for batch in (1, 2) if ctx.smoke else (1, 16):
        denoiser = chunk.denoiser(batch)
        eager, plain = chunk.time(denoiser, batch, repeats)
        ctx.emit(path="eager", batch=batch, ddim_steps=chunk.steps, **eager, peak_mib=_peak_mib(chunk.device))
        if batch == 1:  # what precasting the weights saves: autocast casting them at every call
            per_call = chunk.denoiser(batch, precast=False)
            res, cast_sample = chunk.time(per_call, batch, repeats)
            ctx.emit(path="eager, weights cast per call", batch=batch, ddim_steps=chunk.steps, **res)
            _check(ctx, "precast", batch, denoiser, per_call, chunk, plain, cast_sample, against="per-call cast")
        graphed = chunk.denoiser(batch, graph=True)
        captured = getattr(graphed, "graph", None) is not None
        res, fast = chunk.time(graphed, batch, repeats)
        ctx.emit(path="graph", batch=batch, ddim_steps=chunk.steps, captured=captured, **res, warnings=chunk.warnings)
        _check(ctx, "graph", batch, graphed, denoiser, chunk, fast, plain, captured=captured, precision="bf16 autocast")
    # fp32 (TF32 off): the graph replays the very kernels of the plain call
    import torch

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    denoiser = chunk.denoiser(1, amp=False)
    plain = chunk.sample(denoiser, 1)
    graphed = chunk.denoiser(1, amp=False, graph=True)
    fast = chunk.sample(graphed, 1)
    _check(ctx, "graph", 1, graphed, denoiser, chunk, fast, plain, captured=graphed.graph is not None, precision="fp32")


def sampling_compiled(ctx: Ctx) -> None:
    eager = Chunk(ctx)
    compiled = Chunk(ctx, compile=True)  # the same seeds: the same weights
    repeats = 1 if ctx.smoke else 3
    for batch in (1, 2) if ctx.smoke else (1, 16):
        denoiser, fast_denoiser = eager.denoiser(batch), compiled.denoiser(batch)
        plain = eager.sample(denoiser, batch)
        res, fast = compiled.time(fast_denoiser, batch, repeats)
        fell_back = bool(compiled.warnings)
        ctx.emit(path="compiled", batch=batch, ddim_steps=compiled.steps, **res, fell_back=fell_back)
        _check(
            ctx,
            "compiled",
            batch,
            fast_denoiser,
            denoiser,
            eager,
            fast,
            plain,
            fell_back=fell_back,
            backend=ctx.compile_backend,
        )
        # both, as run.compile with run.cuda_graphs samples: the compiled denoiser (compiled by
        # now) captured in one CUDA graph per chunk; fewer kernels, one launch per step
        graphed = compiled.denoiser(batch, graph=True)
        captured = getattr(graphed, "graph", None) is not None
        res, fast = compiled.time(graphed, batch, repeats)
        ctx.emit(path="compiled+graph", batch=batch, ddim_steps=compiled.steps, **res, captured=captured)
        _check(ctx, "compiled+graph", batch, graphed, denoiser, eager, fast, plain, captured=captured)
    ctx.emit(warnings=compiled.warnings)


# --------------------------------------------------------------------------------------------
# The other steps


def env(ctx: Ctx) -> None:
    import platform

    import torch

    dev = ctx.device
    row = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
        "cpu_count": os.cpu_count(),
        "peak_tflops_assumed": peak_tflops(ctx),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        row.update(capability=f"{props.major}.{props.minor}", memory_gib=props.total_memory / 2**30)
    n, dtype = (256, torch.float32) if dev.type == "cpu" else (8192, torch.bfloat16)
    a, b = torch.randn(n, n, device=dev, dtype=dtype), torch.randn(n, n, device=dev, dtype=dtype)
    for _ in range(3):
        a @ b
    _sync(dev)
    start, reps = time.perf_counter(), 10
    for _ in range(reps):
        a @ b
    _sync(dev)
    row.update(
        matmul_n=n, matmul_dtype=str(dtype), matmul_tflops=2 * n**3 * reps / (time.perf_counter() - start) / 1e12
    )
    ctx.emit(**row)


def checkpointing(ctx: Ctx) -> None:
    """Joint training at batch 8 with and without activation checkpointing (benchmarks.checkpointing,
    channels-last as in the training rows): step time, the memory held for the backward pass
    (allocated bytes after the loss's forward pass above those before it) and peak memory."""
    from benchmarks.checkpointing import measure

    batch, n = (2, 2) if ctx.smoke else (8, 5)
    for on in (False, True):
        row = measure(ctx.size, "joint", batch, on, n, str(ctx.device), channels_last=True)
        peak = row["peak_mib"] if ctx.device.type == "cuda" else None  # CPU: whole-process figures
        ctx.emit(
            activation_checkpointing=on,
            batch=batch,
            step_s=row["step_s"],
            activations_mib=row["activations_mib"] if peak is not None else None,
            peak_mib=peak,
            under_24gib=None if peak is None else peak < 24 * 1024,
        )


def compile_joint(ctx: Ctx) -> None:
    import logging

    # a fallback's full traceback (which inductor pass failed) goes to gpu_suite.log
    fastpath_log = logging.getLogger("syncvp.training.fastpath")
    fastpath_log.setLevel(logging.DEBUG)
    fastpath_log.addHandler(logging.StreamHandler(sys.stdout))
    start = time.perf_counter()
    trainer = Trainer(ctx, "joint train", compile=True)
    res = trainer.steps(2 if ctx.smoke else 8, 2)
    ctx.emit(
        passed=True,
        fell_back=bool(trainer.warnings),
        warnings=trainer.warnings,
        backend=ctx.compile_backend,
        total_s=time.perf_counter() - start,
        **res,
    )


REGIONAL_RECOMPILE_LIMIT = 64  # a ResBlock class meets more than dynamo's default 8 shapes


def compile_regional(ctx: Ctx) -> None:
    """The joint training step with each block compiled on its own (ResBlocks, plane and
    cross-modal attention; `guard_compile` per block) instead of the whole network: a shorter
    compile, since blocks of one class and shape share their compiled code, for fusion only
    within blocks. Measured on this project's 2-core CPU (inductor, paper config, batch 1, fp32,
    forward and backward): the first step, which compiles, 200 s against 319 s for the whole
    network; later steps 3.74-3.97 s against 3.76-3.95 s whole and 4.36-4.41 s eager. An
    experiment for the GPU: not a pipeline option."""
    import torch

    from syncvp.models.cross_attention import CrossModalAttention
    from syncvp.models.unet_blocks import CrossPlaneAttention, PlaneAttention, ResBlock
    from syncvp.training.fastpath import guard_compile

    torch._dynamo.config.recompile_limit = REGIONAL_RECOMPILE_LIMIT
    start = time.perf_counter()
    trainer = Trainer(ctx, "joint train")
    blocks = [
        m
        for m in trainer.model.modules()
        if isinstance(m, (ResBlock, PlaneAttention, CrossPlaneAttention, CrossModalAttention))
    ]
    for m in blocks:
        guard_compile(m, backend=ctx.compile_backend, warn=trainer.warnings.append)
    res = trainer.steps(2 if ctx.smoke else 8, 2)
    from torch._dynamo.utils import counters

    ctx.emit(
        passed=True,
        blocks=len(blocks),
        unique_graphs=counters["stats"]["unique_graphs"],
        fell_back=len(trainer.warnings),
        warnings=trainer.warnings[:5],
        backend=ctx.compile_backend,
        total_s=time.perf_counter() - start,
        **res,
    )


def launches(ctx: Ctx) -> None:
    from benchmarks.launches import count_forward

    for graph in (False, True):
        ctx.emit(**count_forward(ctx.size, ctx.device, graph=graph))


def optimizer(ctx: Ctx) -> None:
    """AdamW step time by implementation on the joint model's parameters (benchmarks.optimizer):
    the per-tensor loop, foreach, fused, and the one `adamw` picks (fused on CUDA)."""
    from benchmarks.optimizer import measure

    for row in measure(ctx.size, ctx.device, 3 if ctx.smoke else 20, 2 if ctx.smoke else 5):
        ctx.emit(**row)


_TEST_LINE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")


def gpu_tests(ctx: Ctx) -> None:
    """The project's `gpu`-marked tests, one row per test as it finishes (so a step cut off by
    its timeout still records the tests that ran), then pytest's summary. Modules that import
    what this machine lacks (e.g. prefect or lpips on the lent GPU machine) are reported as
    collection errors; the rest still run."""
    files = GPU_TEST_FILES_SMOKE if ctx.smoke else GPU_TEST_FILES
    cmd = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "-n", "0", "-m", "gpu"]
    cmd += ["--continue-on-collection-errors", *files]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    last = ""
    for line in proc.stdout:  # the parent's timeout kills this step's process group, pytest included
        print(line, end="", flush=True)
        if match := _TEST_LINE.match(line):
            ctx.emit(test=match[1], outcome=match[2].lower())
        if line.strip():
            last = line.strip()
    rc = proc.wait()
    ctx.emit(pytest_rc=rc, summary=last, command=" ".join(cmd[1:]))


def hang(ctx: Ctx) -> None:
    """A step that never ends (tests the timeout); only run when named in --steps."""
    ctx.emit(note="hang starts")
    time.sleep(3600)


@dataclasses.dataclass(frozen=True)
class Step:
    fn: Callable[[Ctx], None]
    timeout_s: float  # on the GPU
    smoke_timeout_s: float


# In the order they run: the figures of the points first (1 training throughput, 2
# sampling latency, 4 checkpointing), then the GPU tests and the compiled training step (point 3,
# the longest), then what is secondary. Steps a short lease leaves skipped can be run in a
# second call with --steps.
STEPS = {
    "env": Step(env, 40, 30),
    "train_joint": Step(lambda c: train_rows(c, "joint train"), 100, 60),
    "sampling": Step(sampling, 110, 60),
    "sampling_compiled": Step(sampling_compiled, 150, 120),
    "checkpointing": Step(checkpointing, 50, 60),
    "gpu_tests": Step(gpu_tests, 120, 60),
    "compile_joint": Step(compile_joint, 180, 120),
    "train_unet": Step(lambda c: train_rows(c, "UNet train"), 60, 60),
    "train_autoencoder": Step(lambda c: train_rows(c, "autoencoder train"), 60, 60),
    "launches": Step(launches, 45, 60),
    "optimizer": Step(optimizer, 40, 60),
    "compile_regional": Step(compile_regional, 180, 120),
}
# the test files holding `gpu` tests (each imports without prefect, dvc, lpips, netCDF4)
GPU_TEST_FILES = [
    "tests/training/test_graphed_denoiser.py",
    "tests/prediction/test_cuda_graph_sampler.py",
    "tests/models/test_fast_paths.py",
    "tests/diffusion/test_samplers.py",
    "tests/training/test_diffusion_training.py",
    "tests/training/test_autoencoder_training.py",
    "tests/evaluation/test_evaluate.py",
    "tests/metrics/test_protocol.py",
    "tests/data/test_pseudo_depth.py",
    "tests/training/test_optim.py",
    "tests/prediction/test_sampling_precision.py",
    "tests/prediction/test_compiled_sampler.py",  # last: it compiles with inductor
]
GPU_TEST_FILES_SMOKE = GPU_TEST_FILES[:1]  # --smoke: one small file
EXTRA = {"hang": Step(hang, 5, 5)}  # run only when named
MIN_STEP_S = 10  # a step is skipped when less than this is left of the budget (smoke: 2)


# --------------------------------------------------------------------------------------------
# The parent


def run_steps(args) -> list[dict]:
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    names = args.steps or list(STEPS)
    timeouts = dict(args.timeout or [])
    start = time.monotonic()
    results = []
    for name in names:
        step = {**STEPS, **EXTRA}[name]
        left = args.budget_s - (time.monotonic() - start)
        timeout = min(timeouts.get(name, step.smoke_timeout_s if args.smoke else step.timeout_s), left)
        if left < (2 if args.smoke else MIN_STEP_S):
            res = {"kind": "step", "step": name, "status": "skipped", "reason": f"budget: {left:.0f} s left"}
            append(out / JSONL, res)
            results.append(res)
            continue
        cmd = [sys.executable, "-m", "benchmarks.gpu_suite", "--out", str(out), "--run-step", name]
        cmd += ["--deadline-s", f"{timeout * 0.85:.1f}", "--compile-backend", args.compile_backend]
        cmd += ["--smoke"] if args.smoke else []
        cmd += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
        with open(out / LOG, "a") as log:
            log.write(f"\n===== {name} (timeout {timeout:.0f} s) =====\n")
            log.flush()
            t0 = time.monotonic()
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                rc = proc.wait(timeout=timeout)
                status = "ok" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc, status = None, "timeout"
        res = {"kind": "step", "step": name, "status": status, "rc": rc, "seconds": time.monotonic() - t0}
        res["timeout_s"] = timeout
        if status == "failed":
            res["error"] = _last_error(out / LOG)
        append(out / JSONL, res)
        results.append(res)
        print(f"[gpu_suite] {name}: {status} in {res['seconds']:.1f} s", flush=True)
    return results


def _last_error(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def summary(out: Path) -> str:
    """The human table: one line per step, then one per measured row."""
    rows = [json.loads(ln) for ln in (out / JSONL).read_text().splitlines() if ln.strip()]
    lines = [f"{'step':18s} {'status':8s} {'seconds':>8s}  figures"]
    for r in rows:
        if r["kind"] != "step":
            continue
        secs = f"{r['seconds']:8.1f}" if "seconds" in r else f"{'-':>8s}"
        lines.append(f"{r['step']:18s} {r['status']:8s} {secs}  {r.get('reason') or r.get('error') or ''}")
        for m in rows:
            if m["kind"] != "step" and m["step"] == r["step"]:
                lines.append(f"{'':18s} {'':8s} {'':8s}  {_brief(m)}")
    return "\n".join(lines)


def _brief(row: dict) -> str:
    skip = {"kind", "step", "warnings", "flops_per_step", "params", "size"}

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return ", ".join(f"{k}={fmt(v)}" for k, v in row.items() if k not in skip and v is not None)[:200]


def _timeout(text: str) -> tuple[str, float]:
    name, _, secs = text.partition("=")
    return name, float(secs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_suite", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_suite.jsonl and gpu_suite.log")
    parser.add_argument("--budget-s", type=float, default=540, help="wall-clock budget of the whole suite")
    parser.add_argument("--smoke", action="store_true", help="tiny configuration on CPU, tiny step counts")
    parser.add_argument("--steps", type=lambda s: s.split(","), help=f"comma-separated subset of {','.join(STEPS)}")
    parser.add_argument("--timeout", type=_timeout, action="append", help="NAME=SECONDS: override a step's timeout")
    parser.add_argument("--peak-tflops", type=float, help="the chip's dense bf16 peak (default: known chips)")
    parser.add_argument("--compile-backend", help="torch.compile backend (default inductor; --smoke: eager)")
    parser.add_argument("--run-step", help=argparse.SUPPRESS)  # the child: run this one step
    parser.add_argument("--deadline-s", type=float, default=60, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.compile_backend = args.compile_backend or ("eager" if args.smoke else "inductor")
    for name in args.steps or []:
        if name not in STEPS and name not in EXTRA:
            parser.error(f"unknown step {name!r} (known: {', '.join(STEPS)})")
    if args.run_step:
        if args.smoke:
            import torch

            torch.set_num_threads(1)
        ctx = Ctx(
            args.out,
            args.run_step,
            args.smoke,
            time.monotonic() + args.deadline_s,
            args.peak_tflops,
            args.compile_backend,
        )
        {**STEPS, **EXTRA}[args.run_step].fn(ctx)
        return 0
    run_steps(args)
    print(summary(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
