"""Online augmentation as Keras preprocessing layers, run inside tf.data.

Strengths (on pixels in [0, 255]):

=======  ==========================================================
flip     horizontal mirror with probability 1/2
crop     random crop of 87.5 % of each side, resized back to size
rotate   random rotation within ±18° (0.05 of a turn), reflect fill
zoom     random zoom in or out by up to 20 %, reflect fill
color    random brightness ±20 % of the range and contrast ±20 %
=======  ==========================================================

Only ``flip`` can be served from the feature cache (two cached views per
image); any other augmentation makes training fall back to the online path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras


def augmentation(names: tuple[str, ...], image_size: int, seed: int) -> keras.Sequential:
    """One Sequential applying the named augmentations, in a fixed order."""
    import keras
    from keras import layers

    crop = round(image_size * 0.875)
    available = {
        "flip": [layers.RandomFlip("horizontal", seed=seed)],
        "crop": [layers.RandomCrop(crop, crop, seed=seed),
                 layers.Resizing(image_size, image_size)],
        "rotate": [layers.RandomRotation(0.05, fill_mode="reflect", seed=seed)],
        "zoom": [layers.RandomZoom(0.2, fill_mode="reflect", seed=seed)],
        "color": [layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
                  layers.RandomContrast(0.2, value_range=(0, 255), seed=seed)],
    }
    steps = [layer for name in ("flip", "crop", "rotate", "zoom", "color") if name in names
             for layer in available[name]]
    return keras.Sequential(steps, name="augment")
