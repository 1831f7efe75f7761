"""The layer patterns every ResNet family shares, v1 and v2 alike.

Strided convolutions are padded symmetrically by ``(k - 1) // 2`` in all the
families (slim's ``conv2d_same``, torch's ``padding=k//2``, Keras'
``ZeroPadding2D``), and the stem's 3x3/2 max-pool is either TF's "SAME" or
one zero on each side then VALID; both builders take them from here.
"""

from __future__ import annotations

from typing import Literal


def pad_for_stride(x: object, kernel: int, stride: int, name: str) -> tuple[object, str]:
    """``x`` padded for a strided convolution, and the padding mode that convolution uses."""
    from keras import layers

    if stride > 1 and kernel > 1:
        before = (kernel - 1) // 2
        x = layers.ZeroPadding2D(((before, kernel - 1 - before),) * 2, name=f"{name}.pad")(x)
    return x, "same" if stride == 1 else "valid"


def stem_pool(x: object, padding: Literal["same", "symmetric"]) -> object:
    """The stem's 3x3/2 max-pool: TF "SAME" (-inf padding by parity) or a zero each side."""
    from keras import layers

    if padding == "symmetric":
        x = layers.ZeroPadding2D(1, name="pool1.pad")(x)
        return layers.MaxPooling2D(3, strides=2, padding="valid", name="pool1")(x)
    return layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)


def kernel_initializer(fold: bool) -> str:
    """Zeros for a folded copy's kernels, Keras' default otherwise.

    A folded copy is built only to receive the backbone's folded weights at once
    (:func:`~resnet_ft.models.folding.folded_copy`), so drawing random kernels for it
    first is wasted: half the build (a folded ResNet-50 here: 0.41-0.55 s with random
    kernels, 0.18-0.23 s with zeros).
    """
    return "zeros" if fold else "glorot_uniform"
