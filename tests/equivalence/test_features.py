"""The extraction path's speed measures do not change what it computes."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from resnet_ft.data.folders import list_images
from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.features.engines.tensorflow import pooled_features
from resnet_ft.features.extract import extract
from resnet_ft.models.files import load_backbone


def test_compiled_once_and_equal_to_the_plain_model(backbone101, flowers):
    backbone = load_backbone(backbone101)
    # compiled once per backbone and view count (the returned wrapper binds the model to it)
    assert pooled_features(backbone, 2).function is pooled_features(backbone, 2).function
    assert pooled_features(backbone, 1).function is not pooled_features(backbone, 2).function
    paths = list_images(flowers / "roses")[:4]
    spec = Preprocessing(48)
    quiet = Console(quiet=True)
    first = extract(paths, backbone, spec, views=2, cache=None, console=quiet).values
    again = extract(paths, backbone, spec, views=2, cache=None, console=quiet).values
    np.testing.assert_array_equal(first, again)
    pixels = next(iter(image_dataset([str(p) for p in paths], spec).batch(4)))[0].numpy()
    plain = np.asarray(backbone(pixels)).mean(axis=(1, 2))
    mirrored = np.asarray(backbone(pixels[:, :, ::-1])).mean(axis=(1, 2))
    scale = np.abs(plain).max()
    assert np.abs(first[:, 0] - plain).max() <= 1e-4 * scale
    assert np.abs(first[:, 1] - mirrored).max() <= 1e-4 * scale
