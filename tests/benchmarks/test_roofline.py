"""benchmarks/roofline.py: the operators it records on fake tensors, their FLOPs and bytes against
hand-computed values, CUDA's autocast policy emulated on the CPU, attention as one kernel (equal
to SDPA on real tensors), the time model, and a whole tiny training step whose matmul/conv FLOPs
equal torch's FlopCounterMode on a real run of the same step."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from benchmarks import roofline as R


def recorded(fn, *, autocast: bool = True) -> list[R.Op]:
    rec = R.Recorder()
    with R.FusedAttention(), R.cuda_autocast() if autocast else torch.autocast("cpu", enabled=False), rec:
        fn()
    return rec.ops


def test_a_linear_layer_under_autocast_casts_its_operands_and_runs_one_bf16_addmm():
    with FakeTensorMode():
        x, lin = torch.empty(6, 5), torch.nn.Linear(5, 3)
        ops = recorded(lambda: lin(x))
    assert [(o.name, o.dtype) for o in ops] == [("aten::_to_copy", "float32")] * 3 + [("aten::addmm", "bfloat16")]
    # casts read fp32 (4 bytes) and write bf16 (2): bias 3, weight 15, input 30 elements
    assert [o.bytes for o in ops[:3]] == [3 * 6, 15 * 6, 30 * 6]
    addmm = ops[3]
    assert addmm.flops == 2 * 6 * 3 * 5 and addmm.category == "matmul/conv"
    assert addmm.bytes == 2 * (3 + 30 + 15 + 6 * 3)  # bias, input, weight read; output written


def test_group_norm_runs_in_float32_as_under_cuda_autocast():
    with FakeTensorMode():
        x = torch.empty(2, 8, 4, 4, dtype=torch.bfloat16)
        out = {}
        ops = recorded(lambda: out.setdefault("y", F.group_norm(x, 2)))
        assert out["y"].dtype == torch.float32
        with torch.autocast("cpu", dtype=torch.bfloat16):  # CPU's own policy keeps bf16
            assert F.group_norm(x, 2).dtype == torch.bfloat16
    assert [(o.name, o.dtype, o.category) for o in ops] == [
        ("aten::_to_copy", "bfloat16", "casts"),
        ("aten::native_group_norm", "float32", "normalization"),
    ]
    assert ops[0].bytes == 256 * (2 + 4)
    assert ops[1].bytes == 256 * 4 * 2 + 2 * (2 * 2 * 4)  # input, output, mean and rstd [N, groups]


def test_the_cuda_policy_is_undone_on_exit():
    with R.cuda_autocast():
        pass
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert F.group_norm(torch.randn(2, 4, 3, dtype=torch.bfloat16), 2).dtype == torch.bfloat16


def test_views_and_allocations_cost_nothing():
    with FakeTensorMode():
        x = torch.empty(2, 8, 4, 4)
        ops = recorded(
            lambda: (
                x.view(2, 8, 16).transpose(1, 2).permute(0, 2, 1).expand(2, 8, 16)[:, :4],
                x.reshape(2, -1),
                torch.empty(5),
                x.detach(),
            ),
            autocast=False,
        )
    assert ops == []


def test_attention_is_one_kernel_with_sdpas_flop_count():
    b, h, L, S, d = 2, 4, 16, 12, 8
    with FakeTensorMode():
        q = torch.empty(b, h, L, d, requires_grad=True)
        k, v = torch.empty(b, h, S, d, requires_grad=True), torch.empty(b, h, S, d, requires_grad=True)
        rec = R.Recorder()
        with R.FusedAttention():
            with R.cuda_autocast(), rec:
                out = F.scaled_dot_product_attention(q, k, v)
            with rec:
                out.backward(torch.ones_like(out))
    att = [o for o in rec.ops if o.category == "attention"]
    assert [o.name for o in att] == ["roofline::attention", "roofline::attention_backward"]
    fwd = 4 * b * h * L * S * d  # q k^T and p v
    assert att[0].flops == fwd and att[1].flops == 2.5 * fwd  # five products in the backward pass
    assert att[0].bytes == 2 * (2 * b * h * L * d + 2 * b * h * S * d)  # q, k, v read and out written, bf16
    assert att[0].dtype == "bfloat16" and out.dtype == torch.bfloat16
    assert out.transpose(1, 2).is_contiguous()  # written [B, L, H, D] as the GPU kernels do: heads merge as a view
    # the output's gradient, q, k, v and the output read; dq, dk, dv written
    assert att[1].bytes == 2 * (3 * b * h * L * d + 2 * b * h * S * d) + 2 * (b * h * L * d + 2 * b * h * S * d)


def test_on_real_tensors_the_attention_op_is_sdpa():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 4, generator=g, requires_grad=True) for _ in range(3))
    mask = torch.randn(10, 10, generator=g)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    with R.FusedAttention():
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    torch.testing.assert_close(out, ref)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def test_attention_arguments_it_does_not_model_are_refused():
    q = torch.randn(1, 1, 4, 2)
    with R.FusedAttention(), pytest.raises(NotImplementedError, match="is_causal"):
        F.scaled_dot_product_attention(q, q, q, is_causal=True)


def test_the_time_model_by_hand():
    chip = R.Chip(
        peak_tflops=1000, fp32_tflops=50, bandwidth_tbs=2, compute_efficiency=0.5, memory_efficiency=0.5, floor_us=2
    )
    big = R.Op("aten::mm", "matmul/conv", 1e12, 1e9, "bfloat16")
    assert chip.seconds(big) == pytest.approx(1e12 / 5e14)  # compute-bound: 2 ms against 1 ms of traffic
    stream = R.Op("aten::add", "elementwise", 0, 4e9, "float32")
    assert chip.seconds(stream) == pytest.approx(4e9 / 1e12)  # memory-bound: 4 ms
    tiny = R.Op("aten::add", "elementwise", 0, 1e3, "float32")
    assert chip.seconds(tiny) == pytest.approx(2e-6)  # the floor
    fp32 = R.Op("aten::mm", "matmul/conv", 1e12, 0, "float32")
    assert chip.seconds(fp32) == pytest.approx(1e12 / 2.5e13)  # no tensor-core peak for fp32
    assert chip.ideal().seconds(big) == pytest.approx(1e-3) and chip.ideal().seconds(tiny) == pytest.approx(5e-10)

    s = R.summarize([big, stream, tiny], chip)
    assert s["kernels"] == 3 and s["tflop"] == pytest.approx(1.0)
    assert s["estimate_ms"] == pytest.approx(2 + 4 + 0.002)
    assert s["fused_ms"] == pytest.approx(2)  # the elementwise kernels folded away
    assert s["share_estimate"] == pytest.approx(1e12 / 6.002e-3 / 1e15)
    assert s["categories"]["elementwise"] == pytest.approx(
        {"kernels": 2, "gflop": 0, "gb": 4.000001, "ms": 4.002, "share_of_time": 4.002 / 6.002, "compute_bound": 0}
    )
    assert s["categories"]["matmul/conv"]["compute_bound"] == 1
    assert [chip.bound(o) for o in (big, stream, tiny)] == ["compute", "memory", "floor"]


def test_a_tiny_training_steps_matmul_and_conv_flops_equal_flopcountermodes_on_a_real_run():
    """The fake step dispatches the real step's operators: its matmul/conv FLOPs (attention apart,
    which the CPU's flash kernel leaves uncounted) equal FlopCounterMode's on real tensors."""
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.scale import Row, _train_task

    ops = R.record("joint", "tiny", 2)
    torch.manual_seed(0)
    model, loss = _train_task(Row("joint train", "tiny", True, "cpu", 0, 1, 1, False), "cpu", batch=2)
    with FlopCounterMode(display=False) as counter:
        loss(None, 0).backward()
    counted = {str(k): v for k, v in counter.get_flop_counts()["Global"].items()}
    assert not any("attention" in k for k in counted)
    mine = sum(o.flops for o in ops if o.category == "matmul/conv")
    assert mine == counter.get_total_flops() > 0
    cats = {o.category for o in ops}
    assert {"matmul/conv", "attention", "normalization", "casts", "elementwise", "optimizer"} <= cats
    assert [o.name for o in ops if o.category == "optimizer"][-1] == "aten::_fused_adamw_"
    assert not any(o.name in ("aten::zeros_like", "aten::zeros") for o in ops)  # AdamW's state existed


def test_flops_grow_with_the_batch_and_the_kernels_do_not():
    two, four = R.record("joint", "tiny", 2), R.record("joint", "tiny", 4)
    assert len(two) == len(four)
    flops = lambda ops: sum(o.flops for o in ops if o.category in ("matmul/conv", "attention"))  # noqa: E731
    assert flops(four) == pytest.approx(2 * flops(two), rel=0.02)  # the weight-only work is small
    sampling = R.record("sampling", "tiny", 2)
    assert not any(o.category == "optimizer" or o.name.endswith("_backward") for o in sampling)


def test_the_command_prints_a_table_and_writes_json_lines(tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    assert R.main(["--size", "tiny", "--work", "unet,sampling", "--batches", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "unet (tiny), batch 2" in text and "sampling (tiny), batch 2" in text and "matmul/conv" in text
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["work"], r["batch"]) for r in rows] == [("unet", 2), ("sampling", 2)]
    assert all(r["ideal_ms"] <= r["estimate_ms"] and r["fused_ms"] <= r["estimate_ms"] for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batches", "0"], "batch sizes must be >= 1"),
        (["--batches", "a"], "comma-separated batch sizes"),
        (["--work", "vae"], "unknown work 'vae'"),
        (["--compute-efficiency", "1.5"], "--compute-efficiency must be > 0 and <= 1"),
        (["--peak-tflops", "0"], "--peak-tflops must be > 0"),
    ],
)
def test_bad_arguments_are_refused_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit):
        R.main(args)
    assert message in capsys.readouterr().err


def test_sampling_with_precast_weights_drops_the_weight_casts_and_keeps_the_flops():
    cast, per_call = R.record("sampling", "tiny", 2), R.record("sampling", "tiny", 2, precast=False)
    casts = lambda ops: sum(o.category == "casts" for o in ops)  # noqa: E731
    assert casts(cast) < casts(per_call) and len(per_call) - len(cast) == casts(per_call) - casts(cast)
    assert sum(o.flops for o in cast) == sum(o.flops for o in per_call) > 0
    assert {o.dtype for o in cast if o.category == "matmul/conv"} == {"bfloat16"}
