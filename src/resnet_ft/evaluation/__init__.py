"""Using a trained model: predict files, evaluate on a labelled set, metrics and plots."""
