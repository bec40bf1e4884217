"""Data: the clip store, datasets, synthetic generators, source importers."""
