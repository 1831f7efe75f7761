"""Grad-CAM on the last feature map (block4): which part of the image the predicted class came from.

For class c with score y (before the softmax) and the block4 feature map A
(h x w x 2048), Grad-CAM weighs each channel by the spatial mean of dy/dA_k
and keeps the positive part: ``ReLU(sum_k alpha_k A_k)`` (Selvaraju et al.
2017). Our classifiers pool A by its spatial mean before the head, so
dy/dA is the same at every position and the gradient needs the head alone,
never a backward pass through the backbone: a heat map costs one forward pass.

Works on a run's classifier (backbone -> ``head.pool`` -> ``head``) and on
an ``--include-top`` ImageNet backbone (``logits.pool`` -> ``logits``); an
exported model has no feature map to look at.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.errors import InputError
from resnet_ft.inference.options import DEFAULTS
from resnet_ft.util.atomic import write_bytes

if TYPE_CHECKING:
    from PIL import Image

    from resnet_ft.inference.predictor import Predictor

#: Side of a heat-map overlay in pixels (small model inputs are scaled up to be seen).
OVERLAY_SIZE = 224
#: Weight of the heat colours over the image where the map peaks; cold parts show the photo.
OVERLAY_ALPHA = 0.65
#: (pooling layer, scoring layer) of the models Grad-CAM can open: run classifier, ImageNet.
_TOPS = (("head.pool", "head"), ("logits.pool", "logits"))


@dataclass
class CamModel:
    """A classifier split at its last feature map: pixels -> A, and A -> class scores."""

    features: Any  # keras.Model: pixels (N, S, S, 3) -> block4 map (N, h, w, C)
    scores: Callable[[Any], Any]  # block4 map -> (N, classes) scores before the softmax
    preprocessing: Preprocessing


def cam_model(predictor: Predictor) -> CamModel:
    """Split ``predictor``'s Keras model at the global pooling that precedes its classifier."""
    import keras

    model = predictor.model
    names = {layer.name for layer in getattr(model, "layers", [])}
    top = next(((pool, head) for pool, head in _TOPS if pool in names and head in names), None)
    if not isinstance(model, keras.Model) or top is None:
        raise InputError("heat maps need a Keras model with its feature map: a run directory "
                         "or an --include-top backbone, not an exported model")
    pool, head = model.get_layer(top[0]), model.get_layer(top[1])
    features = keras.Model(model.input, pool.input, name="block4_features")
    return CamModel(features, lambda maps: _scores(head, pool(maps)), predictor.preprocessing)


def _scores(head: Any, pooled: Any) -> Any:
    """The class scores before the softmax (Grad-CAM differentiates the class score)."""
    from resnet_ft.models.head import logits

    return logits(head, pooled) if hasattr(head, "layers") else head(pooled)


def gradcam(cam: CamModel, pixels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (N, h, w) of ``classes[i]`` for each image of a batch of pixels."""
    import tensorflow as tf

    maps = tf.convert_to_tensor(cam.features(pixels, training=False))
    with tf.GradientTape() as tape:
        tape.watch(maps)
        scores = cam.scores(maps)
        chosen = tf.gather(scores, tf.constant(classes, tf.int32)[:, None], batch_dims=1)
        total = tf.reduce_sum(chosen)
    alpha = tf.reduce_mean(tape.gradient(total, maps), axis=[1, 2])  # (N, C)
    return tf.nn.relu(tf.einsum("nhwc,nc->nhw", maps, alpha)).numpy()


def iter_gradcam(cam: CamModel, paths: list[Path], classes: list[int],
                 batch_size: int = DEFAULTS.batch_size
                 ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(index, model-input pixels (S, S, 3), Grad-CAM map)`` of every decodable path."""
    dataset = image_dataset([str(p) for p in paths], cam.preprocessing).batch(batch_size)
    start = 0
    for pixels, errors in dataset:
        ok = np.flatnonzero([not e for e in errors.numpy()])
        if len(ok):
            batch = pixels.numpy()[ok]
            maps = gradcam(cam, batch, np.asarray(classes[start:start + len(errors)])[ok])
            for row, index in enumerate(ok):
                yield start + int(index), batch[row], maps[row]
        start += len(errors)


def upsample(heat: np.ndarray, size: int) -> np.ndarray:
    """A map scaled to ``size`` x ``size`` (bilinear) and to [0, 1] (all zero stays zero)."""
    from PIL import Image

    peak = float(heat.max())
    scaled = heat / peak if peak > 0 else np.zeros_like(heat)
    image = Image.fromarray(scaled.astype(np.float32), mode="F")
    return np.clip(np.asarray(image.resize((size, size), Image.Resampling.BILINEAR)), 0, 1)


def overlay(pixels: np.ndarray, heat: np.ndarray, size: int = OVERLAY_SIZE) -> Image.Image:
    """The model's input with the heat map in colour over it (jet: blue cool, red hot).

    The colour's weight grows with the heat, so where the map is cold the
    photo shows through unchanged and the hot region stands out on it.
    """
    import matplotlib
    from PIL import Image

    side = pixels.shape[0]
    level = upsample(heat, side)
    colours = matplotlib.colormaps["jet"](level)[..., :3] * 255.0
    weight = OVERLAY_ALPHA * level[..., None]
    blended = (1 - weight) * pixels + weight * colours
    image = Image.fromarray(np.clip(blended, 0, 255).astype(np.uint8))
    return image.resize((size, size), Image.Resampling.BICUBIC) if side != size else image


def explain_results(cam: CamModel, labels: list[str], results: list[dict[str, Any]],
                    folder: Path, batch_size: int = DEFAULTS.batch_size) -> None:
    """Write a heat-map overlay PNG per predicted file into ``folder``; add ``heatmap`` to each.

    Each map explains the class that was predicted for that file. File names
    are the images' names (``photo.png`` for ``photo.jpg``), made unique.
    """
    done = [r for r in results if "error" not in r]
    paths = [Path(r["file"]) for r in done]
    names = unique_names(paths, ".png")
    classes = [labels.index(r["label"]) for r in done]
    for index, pixels, heat in iter_gradcam(cam, paths, classes, batch_size):
        buffer = io.BytesIO()
        overlay(pixels, heat).save(buffer, format="PNG")
        write_bytes(folder / names[index], buffer.getvalue())
        done[index]["heatmap"] = str(folder / names[index])


def unique_names(paths: list[Path], suffix: str) -> list[str]:
    """``stem + suffix`` per path; a name already taken (same stem, other folder) gets ``-2``..."""
    used: set[str] = set()
    names = []
    for path in paths:
        name, count = f"{path.stem}{suffix}", 1
        while name in used:
            count += 1
            name = f"{path.stem}-{count}{suffix}"
        used.add(name)
        names.append(name)
    return names
