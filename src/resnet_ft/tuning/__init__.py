"""Hyper-parameter search for the head on cached features (``resnet-ft sweep``).

Every trial trains heads with ``train``'s arithmetic on the cached features, all folds
at once in one compiled model (:mod:`~resnet_ft.training.crossval.fit`), scored by k-fold
cross-validation or the fixed validation split; the winner is confirmed with
``train``'s own training loop (:mod:`~resnet_ft.training.crossval.exact`).
"""
