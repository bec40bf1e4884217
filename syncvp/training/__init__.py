"""Training: a model-agnostic loop (`loop.fit`) with resumable state and checkpoints, optimizer
and schedule factories, resumable data streams, and the per-model objectives built on them."""
