"""benchmarks.diffusion's per-parameter comparison of the joint model with the stage-1 UNet, by hand."""

from benchmarks.diffusion import per_parameter


def test_per_parameter_speed_by_hand():
    # stage-1: 1 M parameters, 0.5 s per step of 32 clips; joint: 2 M parameters, 0.8 s per step of 16 clips
    steps, samples = per_parameter({"UNet train step": 0.5, "joint train step": 0.8}, 1_000_000, 2_000_000, 32, 16)
    assert steps == "per parameter, steps/s x parameters: joint 2.50 M, stage-1 2.00 M, ratio 1.25"
    assert samples == "per parameter, parameter-samples/s (x batch): joint 40.00 M, stage-1 64.00 M, ratio 0.62"
