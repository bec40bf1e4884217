"""Training: a generic core and two trainer families built on it.

Core: the model-agnostic loop (`loop.fit`, `Update`), resumable state and its checkpoint
(`state`: `TrainState`, `resume`, `load_finished`), periodic callbacks (`callbacks`), the curves
and finished-run marker a run leaves (`records`), resumable data streams (`data`), optimizer and
schedule factories (`optim`), data-parallel helpers (`distributed`), seeded construction
(`seeded_init`) and speed settings (`fastpath`).

Families, siblings that never import each other: the autoencoder (`autoencoder_job`,
`autoencoder_train`, `autoencoder`, `losses`, `perceptual`, `reconstruction`) and the latent
diffusion models (`diffusion_job`, `diffusion_train`, `diffusion_latents`, `context_probe`).
"""
