"""The feature cache serves only what is still valid: each kind of change is a miss.

Every run goes through the public ``resnet_ft.train``; ``TrainResult.extracted``
counts the images that went through the backbone (cache misses).
"""

from __future__ import annotations

import shutil
import zipfile

import pytest
from PIL import Image, ImageOps

import resnet_ft
from resnet_ft.data.standin import write_standin_images


@pytest.fixture(scope="module")
def small_set(module_tmp):
    root = module_tmp("cache-data")
    return write_standin_images(root / "images", classes=("a", "b"), per_class=3, min_size=40,
                                max_size=56)


def _train(data, backbone, cache, run, **options):
    config = {"data_dir": str(data), "backbone": str(backbone), "epochs": 1, "image_size": 48,
              "batch_size": 4, "cache_dir": str(cache), "augment": "none",
              "precision": "float32", **options}
    return resnet_ft.train(config, run)


def test_each_kind_of_change_is_a_miss(small_set, backbone50, tmp_path):
    cache = tmp_path / "cache"
    first = _train(small_set, backbone50, cache, tmp_path / "r1")
    assert first.extracted == 6
    assert _train(small_set, backbone50, cache, tmp_path / "r2").extracted == 0  # a hit

    # the image's bytes change under the same name: only that image is recomputed
    image = sorted((small_set / "a").iterdir())[0]
    with Image.open(image) as decoded:
        ImageOps.mirror(decoded).save(image, quality=80)
    assert _train(small_set, backbone50, cache, tmp_path / "r3").extracted == 1

    # another backbone file (same weights, other bytes): every image
    other = tmp_path / "other.keras"
    shutil.copyfile(backbone50, other)
    with zipfile.ZipFile(other, "a") as archive:
        archive.writestr("note.txt", "a different file")
    assert _train(small_set, other, cache, tmp_path / "r4").extracted == 6

    # other preprocessing: size, and resize rule
    assert _train(small_set, backbone50, cache, tmp_path / "r5", image_size=56).extracted == 6
    assert _train(small_set, backbone50, cache, tmp_path / "r6",
                  resize="squash").extracted == 6

    # other compute precision: other features, other entries
    assert _train(small_set, backbone50, cache, tmp_path / "r7",
                  precision="mixed_bfloat16").extracted == 6
    # and the original setting is still served from the cache
    assert _train(small_set, backbone50, cache, tmp_path / "r8").extracted == 0
