"""syncvp: joint diffusion for synchronous multi-modal video prediction (the library)."""

__version__ = "0.1.0"
