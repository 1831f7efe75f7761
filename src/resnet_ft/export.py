"""Export a trained run for serving: a TensorFlow SavedModel that takes image files, or TFLite.

**SavedModel** (``--format saved_model``), for TF Serving or any TensorFlow program; it
needs neither Keras nor resnet-ft to run (tested in a fresh process with Keras made
unimportable):

* ``serving_default`` — ``images``: a batch of encoded image files (``tf.string``,
  shape ``[None]``; JPEG, PNG, GIF, BMP, WebP) -> ``probabilities`` (N, C),
  ``top_k_labels`` (N, k, class-name strings) and ``top_k_scores`` (N, k), k = min(5, C).
  Decoding and resizing run in the graph: the bytes are decoded by TensorFlow and then
  go through the very :func:`~resnet_ft.preprocessing.resize` that training used.
* ``serving_pixels`` — ``pixels``: float32 (N, S, S, 3) RGB in [0, 255], already
  resized -> the same three outputs. :func:`load_exported` uses it, so that an exported
  model is evaluated on exactly the pixels the Keras model sees.

The labels are a constant in the graph (that is how ``top_k_labels`` are produced);
``OUT/assets.extra/resnet_ft.json`` repeats them with the preprocessing, for
:func:`load_exported` (``assets.extra`` is the SavedModel place for files the graph
does not read).

Decoder, measured: training decodes with Pillow (:mod:`resnet_ft.images`). Plain
``tf.io.decode_image`` decodes JPEG with libjpeg's fast integer IDCT: on the stand-in
JPEGs it changed 67 % of the pixel values, by up to 6 levels, and a confident 5-class
run's probabilities by up to 0.038 (top-1 unchanged on those 40 images). Pillow uses
the accurate integer IDCT, so JPEG bytes go through
``tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")`` and every other format through
``tf.io.decode_image(channels=3, expand_animations=False)``. With that, the pixels
were identical to Pillow's (not one value differing) for baseline, progressive,
4:2:0 / 4:2:2 / 4:4:4, grayscale and CMYK JPEGs, PNG (RGB, RGBA, palette, 16-bit),
GIF, BMP and lossless WebP, and the SavedModel's probabilities equal ``predict``'s
within 1e-5 for JPEG and PNG files (measured 1.8e-6; tested). What still differs:
TensorFlow ignores the EXIF orientation tag, which Pillow applies, so a photo stored
rotated (common from phones) is classified unrotated; send upright images, or decode
them yourself and call ``serving_pixels``. One undecodable file fails the whole
``serving_default`` call.

**TFLite** (``--format tflite``), for phones and small devices: the pixels function
only (float32 input (N, S, S, 3) in [0, 255], batch 1 by default and resizable;
output: probabilities), because TFLite has no image decoders. ``--quantize``:
``none`` (float32), ``float16`` (half-size weights, float compute), ``dynamic``
(int8 weights, float activations) or ``int8`` (full integer: every op runs in int8,
calibrated on ``--calibration-images`` images, default 100: a seeded sample across the
classes of the run's training split, decoded by :func:`~resnet_ft.preprocessing.image_dataset`,
capped at what exists). The int8 model keeps float32 input and output (QUANTIZE /
DEQUANTIZE at the ends): every variant takes the same pixels and gives the same kind
of probabilities, so they are compared and evaluated alike (uint8 camera input would
need a conversion of its own). Beside ``OUT`` go ``OUT.labels.txt`` (``m.tflite`` ->
``m.labels.txt``, one class name a line, the usual TFLite convention) and
``OUT.resnet_ft.json`` (format, quantization, preprocessing).

Every export reports how closely it follows the run's float Keras model on the run's
validation images (``split.csv``): the SavedModel end to end from the files' bytes
(decoder included), TFLite from the project's own decoded pixels. Outputs are written
atomically: they are built and checked beside ``OUT`` and moved in place only when
complete, so a failed export leaves no ``OUT``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resnet_ft.atomic import _umask, atomic_path
from resnet_ft.errors import InputError, OutputError
from resnet_ft.predict import Predictor, load_predictor
from resnet_ft.preprocessing import Preprocessing, image_dataset, resize
from resnet_ft.runs import MODEL_FILE, model_path

if TYPE_CHECKING:
    import tensorflow as tf

#: Accepted ``--quantize`` values per format.
FORMATS: dict[str, tuple[str, ...]] = {
    "saved_model": ("none",),
    "tflite": ("none", "float16", "dynamic", "int8"),
}
TOP_K = 5
DEFAULT_CALIBRATION_IMAGES = 100
METADATA_FILE = "resnet_ft.json"  # in a SavedModel's assets.extra/
LABELS_SUFFIX = ".labels.txt"
METADATA_SUFFIX = ".resnet_ft.json"
_BATCH = 32


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote and how closely it follows the run's float Keras model."""

    path: Path
    format: str
    quantize: str
    size_bytes: int
    ops: list[str]  # TFLite: builtin op names; SavedModel: signature names
    top1_agreement: float | None  # None: no validation image could be compared
    max_prob_diff: float | None
    compared_images: int
    calibration_images: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**asdict(self), "path": str(self.path)}


def export(
    run_dir: str | Path,
    out: str | Path,
    format: str = "saved_model",
    quantize: str = "none",
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
) -> ExportReport:
    """Export ``run_dir`` to ``out`` in ``format``; see the module docstring."""
    check_options(format, quantize, calibration_images)
    if format == "saved_model":
        return export_saved_model(run_dir, out)
    return export_tflite(run_dir, out, quantize, calibration_images)


def check_options(format: str, quantize: str, calibration_images: int) -> None:
    """Refuse an unknown format or a quantization the format cannot do, naming what works."""
    if format not in FORMATS:
        raise InputError(f"unknown export format {format!r} (accepted: {', '.join(FORMATS)})")
    if quantize not in FORMATS[format]:
        raise InputError(
            f"--quantize {quantize} is not available for {format} "
            f"(accepted: {', '.join(FORMATS[format])})"
        )
    if calibration_images < 1:
        raise InputError(f"--calibration-images must be at least 1, got {calibration_images}")


def export_saved_model(run_dir: str | Path, out: str | Path) -> ExportReport:
    """Write a SavedModel directory with ``serving_default`` (bytes) and ``serving_pixels``."""
    import tensorflow as tf

    run_dir, predictor = _load_run(run_dir)
    out = Path(out)
    with _atomic_dir(out) as tmp:
        _save(_serving_functions(predictor), tmp)
        metadata = _metadata(predictor, "saved_model") | {"labels": predictor.labels}
        _write_json(tmp / "assets.extra" / METADATA_FILE, metadata)
        loaded = tf.saved_model.load(str(tmp))
        paths = _split_files(run_dir, "val")
        scores = _bytes_probabilities(loaded.signatures["serving_default"], paths)
        top1, diff, compared = _agreement(predictor, paths, scores)
        report = ExportReport(out, "saved_model", "none", _tree_size(tmp),
                              sorted(loaded.signatures), top1, diff, compared)
    return report


def export_tflite(
    run_dir: str | Path,
    out: str | Path,
    quantize: str = "none",
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES,
) -> ExportReport:
    """Write ``out`` (.tflite), ``OUT.labels.txt`` and ``OUT.resnet_ft.json``."""
    import tensorflow as tf

    check_options("tflite", quantize, calibration_images)
    run_dir, predictor = _load_run(run_dir)
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"cannot write {out}: is a directory")
    if any(name.splitlines() != [name] for name in predictor.labels):
        raise InputError("a class name contains a line break; it cannot go in a labels file")
    calibration = (_calibration_pixels(run_dir, predictor.preprocessing, calibration_images)
                   if quantize == "int8" else [])
    _make_parent(out)
    try:  # the intermediate SavedModel is as large as the model: beside OUT, not in /tmp
        work_dir = tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent)
    except OSError as exc:
        raise OutputError(f"cannot write to {out.parent}: {exc.strerror or exc}") from exc
    with work_dir as work:
        function = tf.function(
            lambda pixels: {"probabilities": predictor.model(pixels, training=False)},
            input_signature=[_pixels_spec(predictor.preprocessing.image_size)],
        )
        _save({"serving_default": function}, Path(work))
        data = _convert(Path(work), quantize, calibration)
    labels_text = "".join(f"{name}\n" for name in predictor.labels)
    metadata = _metadata(predictor, "tflite", quantize)
    with contextlib.ExitStack() as stack:
        # Entered first, so renamed last: OUT appears only after its sidecar files.
        model_file = stack.enter_context(atomic_path(out))
        model_file.write_bytes(data)
        for path, payload in ((_metadata_path(out), _json_bytes(metadata)),
                              (_labels_path(out), labels_text.encode("utf-8"))):
            stack.enter_context(atomic_path(path)).write_bytes(payload)
        runner = _TFLiteModel(model_file)
        paths = _split_files(run_dir, "val")
        exported = Predictor(runner, predictor.labels, predictor.preprocessing)
        top1, diff, compared = _agreement(
            predictor, paths, (probs for _, probs, _ in exported.probabilities(paths, _BATCH))
        )
        report = ExportReport(out, "tflite", quantize, len(data), runner.ops, top1, diff,
                              compared, len(calibration))
    return report


def load_exported(path: str | Path) -> Predictor:
    """An exported model (SavedModel directory or .tflite file) as a :class:`Predictor`.

    ``Predictor`` only ever calls ``model(pixels, training=False)``; here ``model`` runs
    the export (the SavedModel's ``serving_pixels``, or the TFLite interpreter), and
    decoding stays :func:`~resnet_ft.preprocessing.image_dataset`. So ``predict_files``
    and ``evaluate_dir`` work unchanged, undecodable files are reported the same way,
    and float and exported models are compared on identical pixels.
    """
    path = Path(path)
    if path.is_dir():
        metadata = _read_json(path / "assets.extra" / METADATA_FILE)
        labels = metadata.get("labels")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise InputError(f"{path / 'assets.extra' / METADATA_FILE} has no list of labels")
        model: Any = _SavedModelPixels(path)
    elif path.is_file():
        with path.open("rb") as handle:
            if handle.read(8)[4:] != b"TFL3":
                raise InputError(f"not a TFLite model or SavedModel directory: {path}")
        metadata = _read_json(_metadata_path(path))
        try:
            labels = _labels_path(path).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise InputError(f"cannot read labels {_labels_path(path)}: "
                             f"{exc.strerror or exc}") from exc
        model = _TFLiteModel(path)
    else:
        raise InputError(f"exported model not found: {path}")
    if len(labels) != model.classes:
        raise InputError(f"{path} has {model.classes} classes but {len(labels)} labels")
    try:
        spec = Preprocessing(**metadata["preprocessing"])
    except (KeyError, TypeError) as exc:
        raise InputError(f"no valid preprocessing in the metadata of {path}") from exc
    return Predictor(model, labels, spec)


class _SavedModelPixels:
    """The ``serving_pixels`` signature of a SavedModel, called like a Keras model."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        try:
            self._loaded = tf.saved_model.load(str(path))  # keeps the variables alive
            self._serve = self._loaded.signatures["serving_pixels"]
        except (OSError, KeyError, tf.errors.OpError) as exc:
            raise InputError(f"not a resnet-ft SavedModel: {path} "
                             f"({' '.join(str(exc).split())[:200]})") from exc
        self.classes = int(self._serve.structured_outputs["probabilities"].shape[-1])

    def __call__(self, pixels: np.ndarray, training: bool = False) -> np.ndarray:
        return self._serve(pixels=pixels)["probabilities"].numpy()


class _TFLiteModel:
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
                                 f"{' '.join(str(exc).split())[:200]}") from exc
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
            with _native_stderr_discarded():  # "Created TensorFlow Lite XNNPACK delegate"
                self._interpreter.allocate_tensors()
            self._batch = len(pixels)
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(pixels, np.float32))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()


def _load_run(run_dir: str | Path) -> tuple[Path, Predictor]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"run directory not found: {run_dir}")
    if not model_path(run_dir).is_file():
        raise InputError(f"no trained model in {run_dir} (missing {MODEL_FILE})")
    return run_dir, load_predictor(run_dir)


def _split_files(run_dir: Path, subset: str) -> list[Path]:
    """The run's ``train`` or ``val`` image files, as recorded in ``split.csv``."""
    path = run_dir / "split.csv"
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return [Path(row["file"]) for row in csv.DictReader(handle)
                    if row.get("subset") == subset]
    except (OSError, KeyError, csv.Error) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc


def _pixels_spec(size: int) -> tf.TensorSpec:
    import tensorflow as tf

    return tf.TensorSpec([None, size, size, 3], tf.float32, name="pixels")


def _serving_functions(predictor: Predictor) -> dict[str, Any]:
    """The SavedModel's signatures: encoded bytes and pixels -> probabilities and top-k."""
    import tensorflow as tf

    spec = predictor.preprocessing
    labels = tf.constant(predictor.labels)
    k = min(TOP_K, len(predictor.labels))

    def outputs(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = predictor.model(pixels, training=False)
        # ties: lower index first, as predict's stable argsort
        scores, indices = tf.math.top_k(probabilities, k)
        return {"probabilities": probabilities, "top_k_labels": tf.gather(labels, indices),
                "top_k_scores": scores}

    def decode(data: tf.Tensor) -> tf.Tensor:
        image = tf.cond(
            tf.io.is_jpeg(data),
            # Pillow's IDCT; decode_image's default (fast IDCT) differs by up to 6 levels
            lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
        )
        return resize(image, spec)

    pixel_spec = tf.TensorSpec((spec.image_size, spec.image_size, 3), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="images")])
    def serve_images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return outputs(tf.map_fn(decode, images, fn_output_signature=pixel_spec))

    @tf.function(input_signature=[_pixels_spec(spec.image_size)])
    def serve_pixels(pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        return outputs(pixels)

    return {"serving_default": serve_images, "serving_pixels": serve_pixels}


def _save(functions: dict[str, Any], directory: Path) -> None:
    """``tf.saved_model.save`` the functions as signatures of one ``tf.Module``.

    The module tracks the raw ``tf.Variable`` objects the traced graphs read: tracking
    the Keras model (or its Keras 3 variable wrappers) instead saves a model that TFLite
    cannot freeze (it keeps VAR_HANDLE / READ_VARIABLE ops and no weights).
    """
    import tensorflow as tf

    signatures = {name: function.get_concrete_function() for name, function in functions.items()}
    module = tf.Module()
    for name, function in functions.items():
        setattr(module, name, function)
    module.model_variables = list(
        {id(v): v for concrete in signatures.values() for v in concrete.variables}.values()
    )
    try:
        tf.saved_model.save(module, str(directory), signatures=signatures)
    except tf.errors.OpError as exc:
        raise OutputError(f"cannot write SavedModel {directory}: "
                          f"{' '.join(exc.message.split())}") from exc


def _convert(saved_model: Path, quantize: str, calibration: list[np.ndarray]) -> bytes:
    """TFLite flatbuffer of the SavedModel's default signature, quantized as asked.

    Converting from a SavedModel on disk is the path TF and Keras document, and it was
    measured faster than converting a traced function (13 s vs 23 s for ResNet-101).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        converter.representative_dataset = lambda: ([pixels[None]] for pixels in calibration)
        # every op in int8, or fail: no silent float fallback
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    try:
        with _native_stderr_discarded():
            return converter.convert()
    except Exception as exc:  # the converter raises many types; the user needs one line
        lines = str(exc).strip().splitlines()
        raise OutputError(f"TFLite conversion failed: {lines[0] if lines else type(exc).__name__}"
                          ) from exc


def _calibration_pixels(run_dir: Path, spec: Preprocessing, count: int) -> list[np.ndarray]:
    """Up to ``count`` decoded training images, a seeded sample across all classes.

    ``split.csv`` lists the files class by class, so taking the first ``count`` would
    calibrate on a few classes only.
    """
    paths = _split_files(run_dir, "train")
    order = np.random.default_rng(0).permutation(len(paths))[:count]
    chosen = [str(paths[i]) for i in sorted(order)]
    pixels = [p.numpy() for p, error in image_dataset(chosen, spec) if not error.numpy()]
    if not pixels:
        raise InputError(f"no decodable training image in {run_dir / 'split.csv'} "
                         "to calibrate the int8 model")
    return pixels


def _bytes_probabilities(serve: Any, paths: list[Path]) -> Iterator[np.ndarray | None]:
    """``serving_default`` on the files' bytes; ``None`` for a file it cannot read or decode.

    Batches first; one bad file fails its whole batch, which is then retried file by file.
    """
    import tensorflow as tf

    def run(chunk: list[Path]) -> np.ndarray:
        return serve(images=tf.constant([p.read_bytes() for p in chunk]))["probabilities"].numpy()

    for start in range(0, len(paths), _BATCH):
        chunk = paths[start:start + _BATCH]
        try:
            yield from run(chunk)
        except (OSError, tf.errors.InvalidArgumentError):
            for path in chunk:
                try:
                    yield run([path])[0]
                except (OSError, tf.errors.InvalidArgumentError):
                    yield None


def _agreement(
    reference: Predictor, paths: list[Path], exported: Iterable[np.ndarray | None]
) -> tuple[float | None, float | None, int]:
    """(top-1 agreement, max |p_exported - p_float|, images compared) over ``paths``."""
    pairs = [
        (float_probs, probs)
        for (_, float_probs, _), probs in zip(
            reference.probabilities(paths, _BATCH), exported, strict=True
        )
        if float_probs is not None and probs is not None
    ]
    if not pairs:
        return None, None, 0
    ours = np.stack([p for p, _ in pairs])
    theirs = np.stack([p for _, p in pairs])
    top1 = float(np.mean(ours.argmax(axis=1) == theirs.argmax(axis=1)))
    return top1, float(np.abs(ours - theirs).max()), len(pairs)


def _metadata(predictor: Predictor, fmt: str, quantize: str = "none") -> dict[str, Any]:
    """What :func:`load_exported` needs besides the model (TFLite labels: OUT.labels.txt)."""
    return {"kind": "export", "format": fmt, "quantize": quantize,
            "preprocessing": predictor.preprocessing.to_dict()}


def _labels_path(out: Path) -> Path:
    return out.with_suffix(LABELS_SUFFIX)


def _metadata_path(out: Path) -> Path:
    return out.with_suffix(METADATA_SUFFIX)


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(_json_bytes(data))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"not a resnet-ft export: cannot read {path} "
                         f"({getattr(exc, 'strerror', None) or exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"not a resnet-ft export: {path} is not a JSON object")
    return data


def _tree_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def _make_parent(out: Path) -> None:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot write to {out.parent}: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _native_stderr_discarded() -> Iterator[None]:
    """Silence TFLite's C++ progress lines, which go straight to file descriptor 2.

    The converter prints its quantization settings and the interpreter announces its
    XNNPACK delegate; the CLI's stderr is for one-line errors. Failures still surface
    as Python exceptions with their messages.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def _atomic_dir(target: Path) -> Iterator[Path]:
    """:func:`~resnet_ft.atomic.atomic_path` for a directory.

    The directory is built beside ``target`` and renamed onto it when the body
    succeeds; on any failure it is removed and ``target`` is untouched. A previous
    SavedModel at ``target`` is replaced; anything else there (a run directory
    given as ``-o`` by mistake) is refused rather than deleted.
    """
    if target.is_file() or (target.is_dir() and any(target.iterdir())
                            and not (target / "saved_model.pb").is_file()):
        raise OutputError(f"{target} exists and is not a SavedModel; refusing to replace it")
    _make_parent(target)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    except OSError as exc:
        raise OutputError(f"cannot write to {target.parent}: {exc.strerror or exc}") from exc
    try:
        yield tmp
        old = tmp.with_name(f"{tmp.name}.old")
        if target.exists():
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except OSError:
            if old.exists():
                os.replace(old, target)  # put the previous export back
            raise
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
