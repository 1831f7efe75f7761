"""Judging a trained model: evaluate on a labelled set, metrics, plots, top losses, the report."""
