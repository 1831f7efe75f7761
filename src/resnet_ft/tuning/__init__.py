"""Hyper-parameter search for the head on cached features (``resnet-ft sweep``).

Every trial trains heads exactly as ``train`` does (:mod:`~resnet_ft.tuning.fit` runs the
training loop itself), scored by k-fold cross-validation or the fixed validation split.
"""
