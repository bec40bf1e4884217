"""syncvp: joint diffusion for synchronous multi-modal video prediction (the library)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`syncvp.predict` / `syncvp.predict_folder`, imported on first use (keeps `import syncvp` light)."""
    if name in ("predict", "predict_folder"):
        from syncvp.prediction import api

        return getattr(api, name)
    raise AttributeError(f"module 'syncvp' has no attribute {name!r}")
