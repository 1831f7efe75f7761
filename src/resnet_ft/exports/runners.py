"""Exported models loaded back as :class:`~resnet_ft.evaluation.predictor.Predictor` s.

``Predictor`` only ever calls ``model(pixels, training=False)``; the runners here
answer that call by running the export (a SavedModel's ``serving_pixels``, or the
TFLite interpreter), while decoding stays
:func:`~resnet_ft.data.preprocessing.image_dataset`. So ``predict_files`` and
``evaluate_dir`` work unchanged on exports, undecodable files are reported the same
way, and float and exported models are compared on identical pixels.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.errors import InputError, one_line
from resnet_ft.evaluation.predictor import Predictor
from resnet_ft.exports.formats import METADATA_FILE, labels_path, metadata_path, read_json
from resnet_ft.util.native import native_stderr_discarded

_TFLITE_MAGIC = b"TFL3"  # bytes 4-8 of a TFLite flatbuffer


class SavedModelRunner:
    """The ``serving_pixels`` signature of a SavedModel, called like a Keras model."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        try:
            self._loaded = tf.saved_model.load(str(path))  # keeps the variables alive
            self._serve = self._loaded.signatures["serving_pixels"]
        except (OSError, KeyError, tf.errors.OpError) as exc:
            raise InputError(f"not a resnet-ft SavedModel: {path} "
                             f"({one_line(exc, 200)})") from exc
        self.classes = int(self._serve.structured_outputs["probabilities"].shape[-1])

    def __call__(self, pixels: np.ndarray, training: bool = False) -> np.ndarray:
        return self._serve(pixels=pixels)["probabilities"].numpy()


class TFLiteRunner:
    """A TFLite interpreter called like a Keras model; the batch size follows the input."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        with warnings.catch_warnings():
            # TF 2.21 points to the separate ai-edge-litert package; this one still works.
            warnings.filterwarnings("ignore", message=r"\s*Warning: tf.lite.Interpreter")
            try:
                self._interpreter = tf.lite.Interpreter(
                    model_path=str(path), num_threads=os.cpu_count() or 1
                )
            except ValueError as exc:
                raise InputError(f"cannot load TFLite model {path}: "
                                 f"{one_line(exc, 200)}") from exc
        self._input = self._interpreter.get_input_details()[0]["index"]
        output = self._interpreter.get_output_details()[0]
        self._output = output["index"]
        self.classes = int(output["shape"][-1])
        self._batch = -1
        # before allocation: afterwards, the ops XNNPACK takes over show up as DELEGATE
        self.ops = sorted({op["op_name"] for op in self._interpreter._get_ops_details()})

    def __call__(self, pixels: np.ndarray, training: bool = False) -> np.ndarray:
        if len(pixels) != self._batch:
            self._interpreter.resize_tensor_input(self._input, [len(pixels), *pixels.shape[1:]])
            with native_stderr_discarded():  # "Created TensorFlow Lite XNNPACK delegate"
                self._interpreter.allocate_tensors()
            self._batch = len(pixels)
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(pixels, np.float32))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def load_exported(path: str | Path) -> Predictor:
    """An exported model (SavedModel directory or .tflite file) as a :class:`Predictor`."""
    path = Path(path)
    if path.is_dir():
        model, labels, metadata = _open_saved_model(path)
    elif path.is_file():
        model, labels, metadata = _open_tflite(path)
    else:
        raise InputError(f"exported model not found: {path}")
    if len(labels) != model.classes:
        raise InputError(f"{path} has {model.classes} classes but {len(labels)} labels")
    try:
        spec = Preprocessing(**metadata["preprocessing"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"no valid preprocessing in the metadata of {path}") from exc
    return Predictor(model, labels, spec)


def _open_saved_model(path: Path) -> tuple[SavedModelRunner, list[str], dict[str, Any]]:
    """Metadata first: a directory without it is no resnet-ft export, so TF need not load it."""
    metadata = read_json(path / "assets.extra" / METADATA_FILE)
    labels = metadata.get("labels")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise InputError(f"{path / 'assets.extra' / METADATA_FILE} has no list of labels")
    return SavedModelRunner(path), labels, metadata


def _open_tflite(path: Path) -> tuple[TFLiteRunner, list[str], dict[str, Any]]:
    """The magic number first, so that any other file is named as such, not as a bad export."""
    with path.open("rb") as handle:
        if handle.read(8)[4:] != _TFLITE_MAGIC:
            raise InputError(f"not a TFLite model or SavedModel directory: {path}")
    metadata = read_json(metadata_path(path))
    try:
        labels = labels_path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read labels {labels_path(path)}: "
                         f"{exc.strerror or exc}") from exc
    return TFLiteRunner(path), labels, metadata
