"""Classify image files with a trained run (or an ImageNet backbone) and judge a run on a dataset.

Preprocessing is read from the model file (it travels with the run), and the
same :func:`~resnet_ft.preprocessing.image_dataset` that training used decodes
and resizes, so predict sees exactly what training saw. A file that cannot be
decoded becomes an error entry for that file; the others are still predicted.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resnet_ft.dataset import list_images, scan
from resnet_ft.errors import InputError
from resnet_ft.images import is_image_candidate
from resnet_ft.model_io import read_spec
from resnet_ft.preprocessing import Preprocessing, image_dataset
from resnet_ft.runs import model_path

if TYPE_CHECKING:
    import keras


@dataclass
class Predictor:
    """A model mapping pixels to class scores, its labels and its preprocessing."""

    model: keras.Model
    labels: list[str]
    preprocessing: Preprocessing
    softmax: bool = False  # ImageNet backbones output logits

    def probabilities(self, paths: list[Path], batch_size: int = 32):
        """Yield ``(index, probabilities or None, error or None)`` for every path, in order."""
        dataset = image_dataset([str(p) for p in paths], self.preprocessing).batch(batch_size)
        index = 0
        for pixels, errors in dataset:
            ok = np.array([not e for e in errors.numpy()])
            scores = np.zeros((len(ok), len(self.labels)), np.float32)
            if ok.any():
                out = np.asarray(self.model(pixels.numpy()[ok], training=False))
                if self.softmax:
                    out = np.exp(out - out.max(axis=1, keepdims=True))
                    out /= out.sum(axis=1, keepdims=True)
                scores[ok] = out
            for row, error in enumerate(errors.numpy()):
                yield index, (None if error else scores[row]), (error.decode() or None)
                index += 1


def load_predictor(model: str | Path, labels_file: str | Path | None = None) -> Predictor:
    """A run directory, or a backbone converted with ``--include-top`` plus ``--labels``."""
    from resnet_ft.classifier import load_classifier
    from resnet_ft.model_io import load_imagenet_classifier

    model = Path(model)
    if not model.exists():
        raise InputError(f"run directory or model not found: {model}")
    spec = read_spec(model_path(model)) if model_path(model).is_file() else {}
    if spec.get("kind") == "backbone":
        if labels_file is None:
            raise InputError(f"{model} is a backbone; give the class names with --labels FILE")
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
    return Predictor(network, labels, Preprocessing(**pre) if pre else Preprocessing())


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
    predictor: Predictor, paths: list[Path], *, top_k: int = 5, batch_size: int = 32
) -> list[dict[str, Any]]:
    """One result per file: label, probability and top-k, or an error."""
    k = min(top_k, len(predictor.labels))
    results: list[dict[str, Any]] = []
    for index, probs, error in predictor.probabilities(paths, batch_size):
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


def evaluate_dir(predictor: Predictor, data_dir: Path, *, top_k: int = 5, batch_size: int = 32):
    """Metrics of the run on a class-per-folder set whose classes match the run's labels."""
    from resnet_ft.metrics import classification_report

    _, samples, _ = scan(Path(data_dir), predictor.labels)
    paths = [s.path for s in samples]
    truth, rows, skipped = [], [], {}
    for index, probs, error in predictor.probabilities(paths, batch_size):
        if probs is None:
            skipped[str(paths[index])] = error
            continue
        truth.append(samples[index].label)
        rows.append((paths[index], probs))
    if not rows:
        raise InputError(f"no decodable images in {data_dir}")
    probs = np.stack([p for _, p in rows])
    report = classification_report(np.array(truth), probs, predictor.labels, top_k)
    predicted = probs.argmax(axis=1)
    misclassified = [
        (str(path), predictor.labels[t], predictor.labels[p], float(pr[p]))
        for (path, pr), t, p in zip(rows, truth, predicted, strict=True) if t != p
    ]
    return report, misclassified, skipped
