"""Pretrained checkpoints by name: the catalog, and fetching, checking and converting them once."""
