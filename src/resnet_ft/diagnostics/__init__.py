"""Data-set diagnostics (``resnet-ft doctor``) from the pooled features ``train`` caches.

Duplicates (exact and near, and their groups), likely label errors, weak
slices, outliers, image quality and the data set's shape, each finding with
its files, a score and a reason; see
:func:`resnet_ft.diagnostics.run.diagnose`.
"""
