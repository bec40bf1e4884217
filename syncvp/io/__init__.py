"""File-level helpers: atomic writes, checkpoints, pretrained-weight resolution."""
