"""Hand-run helpers (not part of the pipeline)."""
