"""The diffusion process, samplers, guidance and conditioning rules as pure functions.

Nothing here knows a network: the denoiser is a callable argument (DiT style), so this package
never imports `syncvp.models`.
"""
