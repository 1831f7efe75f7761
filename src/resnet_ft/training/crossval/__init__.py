"""Heads trained on in-memory features as ``train`` trains them, many at once: k-fold
cross-validation for ``sweep``'s trials and ``doctor``'s out-of-fold probabilities."""
