"""The int8 engine: OpenVINO runs the backbone quantised by NNCF on the user's own images.

int8 multiply-accumulates run on the CPU's integer units (VNNI, AMX), twice the work per
instruction of bfloat16. The backbone (BN folded, float32) is converted from a traced
TensorFlow function to OpenVINO, quantised post-training by NNCF on a calibration sample
of the run's training images (:mod:`resnet_ft.data.sampling`), saved as an IR and cached:
keyed by the backbone's identity, the preprocessing, the cut point and the sample's
identity, so a rerun never calibrates again.

A quantised model is checked before it is trusted: its pooled features are compared with
float32's on held-out training images (centred cosine per image). The median and the
worst image must clear :data:`MIN_MEDIAN` and :data:`MIN_WORST`; otherwise
:class:`Refused` says why and the featurizer falls back to a float precision. The
verdict is cached beside the IR.

Inference runs OpenVINO's THROUGHPUT mode (one stream per core) through an asynchronous
queue, each batch split across the queue's requests: a synchronous call uses one core.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from resnet_ft.errors import InputError
from resnet_ft.features.identity import key_digest
from resnet_ft.util.atomic import atomic_dir

if TYPE_CHECKING:
    import keras

    from resnet_ft.features.engines import EngineContext

#: Centred cosine between int8 and float32 pooled features on held-out images: the median
#: and the worst image below which int8 is refused. Measured (docs/concepts/precision.md):
#: 0.9957 / 0.977 on the flowers sample with the ResNet-101 stand-in at 224 px, 0.990 /
#: 0.984 on generated images with the ResNet-50 stand-in at 128 px; heads trained on such
#: int8 features agree with float32 ones on at least 95 % of validation images.
MIN_MEDIAN, MIN_WORST = 0.98, 0.90
#: Changes the cache key when the conversion or quantisation recipe changes.
RECIPE = "nncf-performance-fbc-2"
#: OpenVINO's CPU plugin settings: throughput streams; float32 wherever int8 is not used
#: (its default on bfloat16 CPUs is bfloat16).
CONFIG = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"}


class Refused(Exception):
    """The quantised model failed its check against float32; ``check`` holds the figures."""

    def __init__(self, reason: str, check: dict[str, float]) -> None:
        super().__init__(reason)
        self.check = check


class Runner:
    """A compiled model behind an asynchronous request queue, called on a batch of pixels.

    The batch is split across the queue's requests (one per stream, so every core
    works); the queue and its requests are made once and reused.
    """

    def __init__(self, compiled: Any, views: int) -> None:
        import openvino as ov

        self.compiled, self.views = compiled, views
        self.check: dict[str, float] | None = None
        self.requests = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.queue = ov.AsyncInferQueue(compiled, self.requests)
        self.queue.set_callback(self._done)
        self._results: dict[int, np.ndarray] = {}

    def _done(self, request: Any, index: int) -> None:
        self._results[index] = np.array(request.get_output_tensor(0).data)  # buffers are reused

    def __call__(self, pixels: Any) -> np.ndarray:
        batch = np.asarray(pixels, np.float32)
        if self.views == 2:
            batch = np.concatenate([batch, batch[:, :, ::-1]])
        parts = [rows for rows in np.array_split(np.arange(len(batch)), self.requests)
                 if len(rows)]
        self._results = {}
        for index, rows in enumerate(parts):
            self.queue.start_async({0: batch[rows[0]:rows[-1] + 1]}, userdata=index)
        self.queue.wait_all()
        out = np.concatenate([self._results[index] for index in range(len(parts))])
        return np.stack(np.split(out, self.views), axis=1)


class OpenVinoEngine:
    """int8 extraction: NNCF-quantised OpenVINO models, cached per backbone and sample."""

    name = "openvino"
    replicated = False  # one process uses every core itself; no tf.distribute replicas

    def compile(self, backbone: keras.Model, metadata: dict[str, Any], precision: str, *,
                views: int, cut: str | None = None,
                context: EngineContext | None = None) -> Runner:
        """The quantised model for ``cut`` (pooled features when ``None``), checked."""
        decline_telemetry()
        import openvino as ov

        if context is None or context.calibration is None:
            raise InputError("--precision int8 needs training images to calibrate on")
        folder = self._quantised(backbone, metadata, cut, context)
        runner = Runner(ov.Core().compile_model(str(folder / "model.xml"), "CPU", CONFIG), views)
        if cut is None:
            runner.check = _checked(folder, runner, context)
        return runner

    def _quantised(self, backbone: keras.Model, metadata: dict[str, Any], cut: str | None,
                   context: EngineContext) -> Path:
        """The cached IR of the quantised backbone (calibrated now when missing)."""
        folder = context.cache_root / "int8" / model_key(context, cut)
        if (folder / "model.xml").is_file():
            return folder
        context.console.print(f"calibrating int8 on {len(context.calibration.files)} training "
                              "images (once for this backbone and sample)", highlight=False)
        with atomic_dir(folder) as tmp:
            _quantise(backbone, metadata, cut, context, tmp / "model.xml")
        return folder


def model_key(context: EngineContext, cut: str | None) -> str:
    """What a quantised model depends on: the backbone's weights, the preprocessing, the cut
    point, the calibration sample and the recipe (a change of any is another model)."""
    assert context.calibration is not None
    return key_digest(context.identity, context.preprocessing.to_dict(), cut,
                      context.calibration.identity, RECIPE)[:32]


def _quantise(backbone: keras.Model, metadata: dict[str, Any], cut: str | None,
              context: EngineContext, out: Path) -> None:
    """Convert the folded float32 backbone (up to ``cut``), quantise it, save the IR."""
    decline_telemetry()
    import openvino as ov

    pixels = context.pixels(list(context.calibration.files))
    if not len(pixels):
        raise InputError("no decodable training image to calibrate int8 on")
    model = ov.convert_model(_traced(backbone, metadata, cut).get_concrete_function())
    ov.save_model(quantise(model, pixels), str(out), compress_to_fp16=False)


def quantise(model: Any, pixels: Any) -> Any:
    """``model`` (an ``openvino.Model`` taking pixels) quantised to int8 by NNCF on
    ``pixels`` (N, H, W, 3): symmetric int8 weights per channel, activations per tensor,
    the recipe every int8 model of resnet-ft is made with (extraction and export).

    Matrix products (a classifier's head after the global pool) stay float: they are a
    rounding error of the compute, while their quantisation error lands directly on the
    probabilities, where a head with small margins flips its top class (measured on an
    export of the flowers sample: 86.7 % top-1 agreement with the head in int8).

    NNCF draws progress bars on stdout, which is the command's output: they are kept off it.
    """
    decline_telemetry()
    import nncf

    nncf.set_log_level(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()):
        return nncf.quantize(model, nncf.Dataset(list(pixels), lambda image: image[None]),
                             subset_size=len(pixels), fast_bias_correction=True,
                             preset=nncf.QuantizationPreset.PERFORMANCE,
                             ignored_scope=nncf.IgnoredScope(types=["MatMul"], validate=False))


def decline_telemetry() -> None:
    """Decline OpenVINO's and NNCF's usage telemetry for this process.

    Both report to Intel unless a consent file in the user's home says no; resnet-ft runs
    them as libraries on the user's behalf, and nobody was asked (nor can be, on CI or
    offline machines), so the answer here is no.
    """
    from openvino_telemetry.utils import opt_in_checker

    opt_in_checker.OptInChecker.check = (  # type: ignore[method-assign]
        lambda *_, **__: opt_in_checker.ConsentCheckResult.DECLINED)


def _traced(backbone: keras.Model, metadata: dict[str, Any], cut: str | None) -> Any:
    """pixels (N, H, W, 3) -> pooled features (N, C), or the stages below ``cut``'s output."""
    import tensorflow as tf

    from resnet_ft.models.folding import folded_copy
    from resnet_ft.models.precision import policy
    from resnet_ft.models.unfreeze import split_backbone

    with policy("float32"):
        model = folded_copy(backbone, metadata)
    if cut is not None:
        model = split_backbone(model, cut)[0]

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32,
                                                name="pixels")])
    @tf.autograph.experimental.do_not_convert
    def traced(pixels: tf.Tensor) -> tf.Tensor:
        out = model(pixels, training=False)
        return out if cut is not None else tf.reduce_mean(out, axis=[1, 2])

    return traced


def _checked(folder: Path, runner: Runner, context: EngineContext) -> dict[str, float]:
    """The quantised model's agreement with float32 on held-out images (cached), or
    :class:`Refused` when it is below the thresholds."""
    path = folder / "check.json"
    try:
        check = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        check = _compare(runner, context)
        from resnet_ft.util.atomic import write_text

        write_text(path, json.dumps(check, indent=2))
    if check["images"] and (check["median"] < MIN_MEDIAN or check["worst"] < MIN_WORST):
        raise Refused(f"int8 features agree too little with float32 on {check['images']} "
                      f"held-out training images (centred cosine median {check['median']:.4f},"
                      f" worst {check['worst']:.4f}; needed {MIN_MEDIAN} and {MIN_WORST})",
                      check)
    return check


def _compare(runner: Runner, context: EngineContext) -> dict[str, float]:
    """Centred cosine per held-out image between int8 and float32 pooled features."""
    files = list(context.calibration.held_out)
    pixels = context.pixels(files)
    if not len(pixels):
        return {"images": 0, "median": 1.0, "worst": 1.0}
    ours = runner(pixels)[:, 0].astype(np.float64)
    reference = np.asarray(context.reference(pixels), np.float64)
    return {"images": len(pixels), **centred_cosines(ours, reference)}


def centred_cosines(ours: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Median and minimum cosine of each row pair, both centred on the reference's mean:
    raw pooled ResNet features all point roughly the same way, which would flatter them."""
    mean = reference.mean(axis=0)
    a, b = ours - mean, reference - mean
    cosine = (a * b).sum(axis=1) / np.maximum(
        np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return {"median": float(np.median(cosine)), "worst": float(cosine.min())}


ENGINE = OpenVinoEngine()
