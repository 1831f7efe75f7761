"""Classify image files with a trained run (or an ImageNet backbone).

Preprocessing is read from the model file (it travels with the run), and the
same :func:`~resnet_ft.data.preprocessing.image_dataset` that training used decodes
and resizes, so predict sees exactly what training saw. A file that cannot be
decoded becomes an error entry for that file; the others are still predicted.

Precision: float32 by default, the saved model itself, so the output equals
the exported model's. ``--precision`` (``auto``, ``mixed_bfloat16``,
``mixed_float16``) is for bulk jobs: the backbone then runs as the
BN-folded compute copy that feature extraction uses
(:func:`~resnet_ft.training.inputs.extractor`), in that precision, and the
float32 head follows — for a head-only run of that precision, exactly the
features its training cached.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from resnet_ft.data.folders import list_images
from resnet_ft.data.images import is_image_candidate
from resnet_ft.data.preprocessing import Preprocessing, image_dataset
from resnet_ft.errors import InputError
from resnet_ft.models.files import read_metadata
from resnet_ft.models.run_dir import model_path

if TYPE_CHECKING:
    import keras


@dataclass
class Predictor:
    """A model mapping pixels to class scores, its labels and its preprocessing.

    ``model`` is the float32 model as saved (exports and heat maps use it);
    ``compute``, when set, is what scores pixels instead: the mixed-precision
    copy that ``--precision`` asks for.
    """

    model: keras.Model
    labels: list[str]
    preprocessing: Preprocessing
    softmax: bool = False  # ImageNet backbones output logits
    compute: Callable[[np.ndarray], np.ndarray] | None = None
    precision: str = "float32"  # what scores are computed in

    def probabilities(self, paths: list[Path], batch_size: int = 32, *, tta: bool = False):
        """Yield ``(index, probabilities or None, error or None)`` for every path, in order.

        ``tta``: the mean of the probabilities of the image and its horizontal mirror.
        """
        for index, views, error in self.view_probabilities(paths, batch_size, 2 if tta else 1):
            yield index, (None if views is None else views.mean(axis=0)), error

    def view_probabilities(self, paths: list[Path], batch_size: int = 32, views: int = 1):
        """Yield ``(index, (views, classes) probabilities or None, error or None)`` per path.

        View 1 is the horizontal mirror (the second view of the feature cache);
        both views go through the model as one batch.
        """
        dataset = image_dataset([str(p) for p in paths], self.preprocessing).batch(batch_size)
        index = 0
        for pixels, errors in dataset:
            ok = np.array([not e for e in errors.numpy()])
            scores = np.zeros((len(ok), views, len(self.labels)), np.float32)
            if ok.any():
                batch = pixels.numpy()[ok]
                if views == 2:
                    batch = np.concatenate([batch, batch[:, :, ::-1]])
                out = self._scores(batch)
                scores[ok] = np.stack(np.split(out, views), axis=1)
            for row, error in enumerate(errors.numpy()):
                yield index, (None if error else scores[row]), (error.decode() or None)
                index += 1

    def _scores(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities of a batch of pixels (softmax of an ImageNet model's logits)."""
        if self.compute is not None:
            return self.compute(pixels)
        out = np.asarray(self.model(pixels, training=False))
        if self.softmax:
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out


def decide_precision(requested: str) -> tuple[str, str]:
    """``(precision, why)`` for ``predict``/``evaluate``: ``auto`` decided for this machine."""
    from resnet_ft.models.precision import PRECISIONS, resolve_precision

    if requested not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    return resolve_precision(requested)


def load_predictor(model: str | Path, labels_file: str | Path | None = None, *,
                   precision: str = "float32", console: Console | None = None) -> Predictor:
    """A run directory, or a backbone converted with ``--include-top`` plus ``--labels``.

    ``precision`` other than float32 gives the predictor a compute copy in
    that precision (``auto`` decided for this machine); the choice is then
    said once on ``console`` (stderr by default), as ``train`` says what it picked.
    """
    from resnet_ft.models.files import load_imagenet_classifier
    from resnet_ft.models.run_dir import load_classifier

    decided, why = decide_precision(precision)
    model = Path(model)
    if not model.exists():
        raise InputError(f"run directory or model not found: {model}")
    spec = read_metadata(model_path(model)) if model_path(model).is_file() else {}
    if spec.get("kind") == "backbone":
        if labels_file is None:
            raise InputError(f"{model} is a backbone; give the class names with --labels FILE")
        if decided != "float32":
            raise InputError("--precision: an ImageNet backbone predicts in float32 only")
        classifier = load_imagenet_classifier(model)
        names = [line.strip() for line in Path(labels_file).read_text().splitlines()
                 if line.strip()]
        classes = int(classifier.output_shape[-1])
        if len(names) != classes:
            raise InputError(f"--labels {labels_file} has {len(names)} names; the model has "
                             f"{classes} classes")
        return Predictor(classifier, names, Preprocessing(224, "crop"), softmax=True)
    network, labels = load_classifier(model)
    pre = spec.get("preprocessing", {})
    predictor = Predictor(network, labels, Preprocessing(**pre) if pre else Preprocessing())
    if decided != "float32":
        predictor.compute = compute_copy(network, spec.get("backbone", {}), decided)
        predictor.precision = decided
    if precision != "float32":
        (console or Console(stderr=True)).print(f"precision {decided}: {why}")
    return predictor


def compute_copy(network: keras.Model, metadata: dict[str, Any],
                 precision: str) -> Callable[[np.ndarray], np.ndarray]:
    """Pixels -> probabilities in ``precision``: the extraction path, then the float32 head.

    The backbone runs as feature extraction runs it (BN folded, compiled,
    rebuilt from the saved float32 weights), so bulk predictions of a
    head-only run in its own precision see the features its training saw.
    """
    from resnet_ft.features.extract import pooled_features
    from resnet_ft.models.head import split_classifier
    from resnet_ft.training.inputs import Networks, extractor

    backbone, head = split_classifier(network)
    pooled = pooled_features(extractor(Networks(backbone, backbone, metadata), precision), 1)
    return lambda pixels: np.asarray(head(pooled(pixels)[:, 0], training=False), np.float32)


def collect_images(inputs: list[str]) -> list[Path]:
    """Files, directories (recursed, images only) and glob patterns, in the given order."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(list_images(path))
        elif path.exists():
            found.append(path)
        elif matches := sorted(glob.glob(item, recursive=True)):
            found.extend(Path(m) for m in matches if Path(m).is_dir() is False
                         and is_image_candidate(Path(m)))
        else:
            found.append(path)  # reported as "file not found" by the decoder
    return found


def predict_files(
    predictor: Predictor, paths: list[Path], *, top_k: int = 5, batch_size: int = 32,
    tta: bool = False,
) -> list[dict[str, Any]]:
    """One result per file: label, probability and top-k, or an error."""
    k = min(top_k, len(predictor.labels))
    results: list[dict[str, Any]] = []
    for index, probs, error in predictor.probabilities(paths, batch_size, tta=tta):
        if probs is None:
            results.append({"file": str(paths[index]), "error": error})
            continue
        order = np.argsort(-probs, kind="stable")[:k]
        results.append({
            "file": str(paths[index]),
            "label": predictor.labels[order[0]],
            "probability": float(probs[order[0]]),
            "top_k": [{"label": predictor.labels[i], "probability": float(probs[i])}
                      for i in order],
        })
    return results


def predict(
    model: str | Path,
    images: list[str | Path],
    *,
    top_k: int = 5,
    batch_size: int = 32,
    labels: str | Path | None = None,
    tta: bool = False,
    explain: str | Path | None = None,
    precision: str = "float32",
    console: Console | None = None,
) -> list[dict[str, Any]]:
    """Classify image files (paths, directories or glob patterns) with a run or backbone.

    One result per file, in order: ``label``, ``probability`` and ``top_k``,
    or ``error`` for a file that cannot be read (the others are still
    classified). ``labels`` names the classes of an ``--include-top`` backbone.
    ``tta`` averages each image's probabilities with its mirror's. ``explain``
    writes a Grad-CAM overlay PNG per classified image into that folder (from
    the float32 model) and adds its path to the result as ``heatmap``.
    ``precision`` (``auto``, ``float32``, ``mixed_bfloat16``, ``mixed_float16``)
    is float32 by default, so results equal the exported model's; the others
    are for bulk jobs. A choice other than float32 is said once on ``console``
    (stderr by default).
    """
    from resnet_ft.evaluation.gradcam import cam_model, explain_results

    predictor = load_predictor(model, labels, precision=precision, console=console)
    cam = cam_model(predictor) if explain is not None else None  # refused before any work
    files = collect_images([str(image) for image in images])
    results = predict_files(predictor, files, top_k=top_k, batch_size=batch_size, tta=tta)
    if cam is not None:
        explain_results(cam, predictor.labels, results, Path(explain), batch_size=batch_size)
    return results
