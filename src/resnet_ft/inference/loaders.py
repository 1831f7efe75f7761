"""Loading a model for inference: one registry, one function, every kind of model.

:func:`load_predictor` is the one place a model is loaded to classify
images. It asks the registered :class:`Loader` s, in order, which one claims
the path: a run directory (or its ``model.keras``), a backbone converted
with ``--include-top`` (with ``--labels``), and every export format, which
:mod:`resnet_ft.exports.formats` registers when :mod:`resnet_ft` is imported
(as timm's models register themselves). A new kind of model is one loader
and one :func:`register` call.

Precision: a run's model computes in float32 by default, the saved model
itself, so its output equals the exported model's. ``auto``,
``mixed_bfloat16`` or ``mixed_float16`` (bulk jobs) run the backbone through
the featurizer in that precision (:mod:`resnet_ft.features.featurizer`: BN
folded, compiled once) and the float32 head after it — for a head-only run of
that precision, exactly the features its training cached. The choice is said
once on ``console``, as ``train`` says what it picked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.errors import InputError
from resnet_ft.inference.options import DEFAULTS
from resnet_ft.inference.predictor import Predictor
from resnet_ft.models import files
from resnet_ft.models.files import Recent, read_metadata
from resnet_ft.runs.run import Run, model_file

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class Request:
    """What a loader is asked for besides the path: labels of a bare backbone, precision."""

    labels: str | Path | None = None
    precision: str = DEFAULTS.precision
    why: str = "as asked"
    console: Console | None = None


@dataclass(frozen=True)
class Loader:
    """One kind of model: whether a path is one (cheap: names, headers), and how to load it."""

    name: str
    claims: Callable[[Path], bool]
    load: Callable[[Path, Request], Predictor]
    #: Why this kind refuses ``--precision`` (only a run's own model computes in another).
    fixed_precision: str | None = "it computes as it was saved"
    #: Lower goes first: a catch-all (any directory is a run to the run loader) goes last.
    order: int = 0


LOADERS: list[Loader] = []
#: How many classifiers :data:`shared_model` keeps: the last ones loaded.
RECENT_MODELS = 2


def register(loader: Loader) -> None:
    """Make ``loader``'s kind of model loadable (a name registered twice is replaced)."""
    LOADERS[:] = sorted([known for known in LOADERS if known.name != loader.name] + [loader],
                        key=lambda known: known.order)


def load_predictor(model: str | Path, labels_file: str | Path | None = None, *,
                   precision: str = DEFAULTS.precision, console: Console | None = None
                   ) -> Predictor:
    """A run directory, an ``--include-top`` backbone with ``labels_file``, or an export."""
    from resnet_ft.models.precision import resolve_precision

    path = Path(model)
    if not path.exists():
        raise InputError(f"run directory or model not found: {path}")
    loader = next((known for known in LOADERS if known.claims(path)), None)
    if loader is None:
        kinds = ", ".join(known.name for known in LOADERS)
        raise InputError(f"{path} is no model resnet-ft can load (known kinds: {kinds})")
    if precision != "float32" and loader.fixed_precision:
        raise InputError(f"--precision applies to a run's own model; {loader.fixed_precision}")
    decided, why = resolve_precision(precision)
    predictor = loader.load(path, Request(labels_file, decided, why, console))
    if precision != "float32":
        (console or Console(stderr=True)).print(f"precision {decided}: {why}")
    return predictor


#: A run's classifier for predictors, which only run it (:class:`~resnet_ft.models.files.Recent`).
shared_model = Recent(RECENT_MODELS, lambda path: files.load_model(path))


def keep_classifier(path: Path, classifier: keras.Model | None) -> None:
    """A finished run's classifier, as training wrote it to ``path``, for later predictors.

    A process that trains and then predicts, evaluates, exports or reports (a notebook,
    ``sweep``, the tests) would otherwise read back the 100-200 MB it has just written.
    """
    if classifier is not None and _shareable():
        shared_model.keep(path, classifier)


def shared_classifier(path: Path) -> keras.Model:
    """A run's classifier for code that only computes with it (predictors, distillation's
    teacher): the one kept in :data:`shared_model`, so a process that predicts in a loop
    or distils several students from one teacher reads it once."""
    return shared_model(path) if _shareable() else files.load_model(path)


def _shareable() -> bool:
    """Not under a distribution strategy: its variables are mirrored across its replicas."""
    import tensorflow as tf

    return not tf.distribute.has_strategy()


def _kind(path: Path) -> str:
    """The ``kind`` recorded in a resnet-ft ``.keras`` file (``""`` for anything else)."""
    target = model_file(path)
    if target.suffix != ".keras" or not target.is_file():
        return ""
    try:
        return str(read_metadata(target).get("kind", ""))
    except InputError:
        return ""


def _load_run(path: Path, request: Request) -> Predictor:
    """A run's classifier; in another precision, the featurizer's backbone and its head."""
    run = Run.finished(path)
    from resnet_ft.inference.reject import with_features

    network, labels = run.load_classifier(shared_classifier)
    predictor = Predictor(network, labels, run.preprocessing())
    predictor.scorer = run.scorer()
    if predictor.scorer is not None:
        both = with_features(network)
        predictor.features = lambda pixels: both(pixels, training=False)
    if request.precision != "float32":
        predictor.compute = compute_copy(run, network, request.precision, request.console)
        predictor.precision = request.precision
    return predictor


def compute_copy(run: Run, network: Any, precision: str,
                 console: Console | None) -> Callable[[np.ndarray], np.ndarray]:
    """Pixels -> probabilities in ``precision``: the featurizer's backbone, then the head.

    The backbone runs as feature extraction runs it (BN folded, compiled,
    rebuilt from the saved float32 weights; int8: quantised on the run's own
    training images), so bulk predictions of a head-only run in its own
    precision see the features its training saw.
    """
    from resnet_ft.features.featurizer import Backbone, Featurizer, run_calibration
    from resnet_ft.models.head import probabilities, split_classifier

    backbone, head = split_classifier(network)
    identity, models = (_trained_identity(run, backbone) if precision == "int8"
                        else (None, None))
    featurizer = Featurizer(Backbone(identity, run.metadata().get("backbone", {}), backbone),
                            run.preprocessing(), precision, store_root=None,
                            console=console or Console(stderr=True),
                            calibration=run_calibration(run, precision), models_root=models)
    pooled = featurizer.function(1)
    return lambda pixels: probabilities(head, np.asarray(pooled(pixels))[:, 0])


def _trained_identity(run: Run, backbone: Any) -> tuple[str, Path]:
    """The identity a run's backbone was quantised under, and where: a head-only run's is
    its backbone file's (so the int8 model its training calibrated serves), else its own."""
    from resnet_ft.features.featurizer import store_root
    from resnet_ft.features.reuse import run_backbone

    try:
        config = run.config()
    except InputError:
        config = None
    root = store_root(config.cache_dir if config else None)
    reuse = run_backbone(run.model_path, config.backbone_file(fetch=False) if config else "",
                         bool(config) and config.trainable == "head", lambda: backbone, root)
    return reuse.identity, root


def _load_backbone(path: Path, request: Request) -> Predictor:
    """An ``--include-top`` backbone: the 1000-way ImageNet classifier, named by ``labels``."""
    from resnet_ft.models.files import load_imagenet_classifier

    if request.labels is None:
        raise InputError(f"{path} is a backbone; give the class names with --labels FILE")
    classifier = load_imagenet_classifier(path)
    names = [line.strip() for line in Path(request.labels).read_text().splitlines()
             if line.strip()]
    classes = int(classifier.output_shape[-1])
    if len(names) != classes:
        raise InputError(f"--labels {request.labels} has {len(names)} names; the model has "
                         f"{classes} classes")
    return Predictor(classifier, names, Preprocessing(224, "crop"), softmax=True)


register(Loader("backbone", lambda p: _kind(p) == "backbone", _load_backbone,
                "an ImageNet backbone predicts in float32 only"))
register(Loader("run", lambda p: p.is_dir() or _kind(p) == "classifier", _load_run, None,
                order=10))
