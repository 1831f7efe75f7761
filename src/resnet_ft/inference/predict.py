"""``predict``: classify image files (paths, folders, globs) with any model that loads.

One result per file, in order: ``label``, ``probability`` and ``top_k``, or
``error`` for a file that cannot be read (the others are still classified).
Grad-CAM heat maps (``explain``) come from the float32 Keras model.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from resnet_ft.data.folders import list_images
from resnet_ft.data.images import is_image_candidate
from resnet_ft.inference.loaders import load_predictor
from resnet_ft.inference.options import InferenceOptions, inference_options
from resnet_ft.inference.predictor import Predictor
from resnet_ft.inference.reject import mark
from resnet_ft.runs.run import Run


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


def predict_files(predictor: Predictor, paths: list[Path],
                  options: InferenceOptions | None = None, **values: Any) -> list[dict[str, Any]]:
    """One result per file: label, probability and top-k, or an error; with the run's reject
    score (``ood_score``) when it has one, and ``unknown`` beyond its threshold with ``reject``."""
    options = inference_options(options, **values)
    k = min(options.top_k, len(predictor.labels))
    results: list[dict[str, Any]] = []
    scores: list[float | None] = []
    for index, probs, score, error in predictor.with_scores(paths, options.batch_size,
                                                            tta=options.tta):
        scores.append(score)
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
    if predictor.scorer is None:
        return results
    return mark(results, scores, predictor.scorer, options.reject)


def predict(run: str | Path, images: list[str | Path], *,
            explain: str | Path | None = None, console: Console | None = None,
            **values: Any) -> list[dict[str, Any]]:
    """Classify image files (paths, directories or glob patterns) with a run (or any model
    that loads: an ``--include-top`` backbone, an export).

    ``values`` are :class:`~resnet_ft.inference.options.InferenceOptions`:
    ``top_k``, ``batch_size``, ``tta`` (average each image's probabilities with
    its mirror's), ``labels`` (the class names of an ``--include-top``
    backbone), ``model`` (an exported model to run instead of the run's) and
    ``precision`` (float32 by default, so results equal the exported model's;
    the others are for bulk jobs, said once on ``console``). ``explain`` writes
    a Grad-CAM overlay PNG per classified image into that folder (from the
    float32 model) and adds its path to the result as ``heatmap``. ``reject``: images beyond
    the run's reject threshold are labelled ``unknown`` (a run without a scorer is refused).
    """
    from resnet_ft.inference.gradcam import cam_model, explain_results

    options = inference_options(**values)
    if options.reject:
        Run.finished(run).require_scorer()  # refused before any work
    predictor = load_predictor(options.model or run, options.labels,
                               precision=options.precision, console=console)
    cam = cam_model(predictor) if explain is not None else None  # refused before any work
    files = collect_images([str(image) for image in images])
    results = predict_files(predictor, files, options)
    if cam is not None:
        explain_results(cam, predictor.labels, results, Path(explain),
                        batch_size=options.batch_size)
    return results
