"""The featurizer: the one place that answers "features of these files under this backbone".

Every consumer — ``train`` (pooled features, and the frozen stages' output
for ``--trainable``), a distillation teacher, ``doctor``, ``sweep``, bulk
``predict``/``evaluate``, ``report``, pruning — asks a :class:`Featurizer`
made of a backbone, a preprocessing and a precision. It owns:

* the compute copy: the engine for the precision
  (:func:`~resnet_ft.features.engines.engine_for`) compiles the backbone once,
  BN folded in (TensorFlow) — so every path computes the same numbers;
* the store identity: entries are keyed by the backbone's content identity
  salted by the precision, the preprocessing, the image file's identity and
  the view (:mod:`~resnet_ft.features.store`), so one command's extraction is
  the next one's cache hit;
* extraction itself (:func:`~resnet_ft.features.extract.extract`): decode,
  batch, run, commit shard by shard.

Whether a run's saved classifier may reuse the features of the backbone file
it was trained from is the other shared decision: :mod:`~resnet_ft.features.reuse`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console

from resnet_ft.config import TrainConfig
from resnet_ft.data.preprocessing import Preprocessing
from resnet_ft.data.sampling import CalibrationSample, calibration_sample
from resnet_ft.errors import InputError, NonFiniteError
from resnet_ft.features.engines import EngineContext, Function, engine_for
from resnet_ft.features.engines.openvino import RECIPE
from resnet_ft.features.extract import EXTRACT_BATCH, check_decodable, extract
from resnet_ft.features.identity import default_cache_dir, salted
from resnet_ft.features.store import FeatureCache, FeatureTable
from resnet_ft.models.precision import keras_precision
from resnet_ft.runs.run import Run
from resnet_ft.util.hashing import sha256_file

if TYPE_CHECKING:
    import keras

#: Images per batch through the frozen stages (their outputs are large).
BOUNDARY_BATCH = 16
#: Files a non-finite-features error names before "and N more".
LISTED = 3


#: What the progress bar of a pooled-features pass says unless its caller says more.
EXTRACTING = "extracting features"


class Backbone:
    """A frozen backbone as features are computed from it: identity, metadata, model on demand.

    ``identity`` names the weights (the content hash of the file they come
    from); ``None`` means weights with no stable identity (a model being
    trained), whose features are never stored. The model is loaded only when
    something must be computed, so a fully cached run never pays for it.
    """

    def __init__(self, identity: str | Callable[[], str] | None, metadata: dict[str, Any],
                 model: keras.Model | Callable[[], keras.Model], source: str = "") -> None:
        self.metadata, self.source = metadata, source
        self._identity, self._model = identity, model

    @classmethod
    def from_file(cls, path: str | Path) -> Backbone:
        """A converted backbone file (``convert``'s output); hashed and loaded on demand.

        The model is the process's shared copy of the file
        (:data:`~resnet_ft.models.files.shared_backbone`): only read, never trained.
        """
        from resnet_ft.models.files import backbone_metadata, require_model_file, shared_backbone

        require_model_file(path)
        return cls(lambda: sha256_file(path), backbone_metadata(path),
                   lambda: shared_backbone(path), str(path))

    @property
    def identity(self) -> str | None:
        """The content hash of the weights' file (computed on first use), or ``None``."""
        if callable(self._identity):
            self._identity = self._identity()
        return self._identity

    @property
    def model(self) -> keras.Model:
        """The float32 backbone (loaded on first use)."""
        if callable(self._model) and not hasattr(self._model, "layers"):
            self._model = self._model()
        return self._model  # type: ignore[return-value]


class Featurizer:
    """Features of image files under one backbone, precision and preprocessing.

    ``store_root`` is the feature store's directory (``None``: nothing is
    stored, everything computed); ``strategy`` spreads batches over replicas;
    ``calibration`` is the training images int8 is calibrated and checked on.
    An int8 model that fails its check is refused in one line, and the
    featurizer computes in the float precision ``auto`` would pick instead
    (``int8`` then holds the check's figures and the reason).
    """

    def __init__(self, backbone: Backbone, preprocessing: Preprocessing, precision: str, *,
                 store_root: str | Path | None, console: Console, strategy: Any = None,
                 calibration: CalibrationSample | None = None,
                 models_root: str | Path | None = None) -> None:
        self.backbone, self.preprocessing, self.console = backbone, preprocessing, console
        self.strategy, self.calibration, self.store_root = strategy, calibration, store_root
        #: where engines cache what they build (quantised models): beside the features
        self.models_root = models_root or store_root or default_cache_dir()
        self.int8: dict[str, Any] | None = None
        if precision == "int8" and backbone.identity is None:
            precision = keras_precision(precision)  # weights being trained: nothing to cache
        self._use(precision)

    def _use(self, precision: str) -> None:
        """Compute in ``precision``: its engine, and its entries in the store."""
        self.precision, self.engine = precision, engine_for(precision)
        self._functions: dict[tuple[int, str | None], Function] = {}
        self.store: FeatureCache | None = None
        if self.store_root is not None and self.backbone.identity is not None:
            salt = precision
            if precision == "int8" and self.calibration is not None:
                salt = f"int8:{self.calibration.identity}:{RECIPE}"
            self.store = FeatureCache(Path(self.store_root),
                                      salted(self.backbone.identity, salt), self.preprocessing,
                                      precision=precision, warn=self._say)

    def _say(self, line: str) -> None:
        """One line about the store (a shard set aside), printed as it is: no markup."""
        self.console.print(line, markup=False, highlight=False)

    def function(self, views: int, cut: str | None = None) -> Function:
        """``pixels -> outputs per view``: pooled, or the frozen stages' output below ``cut``."""
        key = (views, cut)
        if not self._functions:
            _require_finite(self.backbone)
        if key not in self._functions:
            self._functions[key] = self.engine.compile(
                self.backbone.model, self.backbone.metadata, self.precision, views=views,
                cut=cut, context=self._context())
        return self._functions[key]

    def _context(self) -> EngineContext:
        return EngineContext(Path(self.models_root), self.backbone.identity, self.preprocessing,
                             self.console, self.calibration, self._pixels, self._float32)

    def _pixels(self, paths: list[Path]) -> np.ndarray:
        """The decodable files' pixels, as extraction decodes them."""
        from resnet_ft.data.preprocessing import decoded_pixels

        return decoded_pixels(paths, self.preprocessing)

    def _float32(self, pixels: np.ndarray) -> np.ndarray:
        """float32 pooled features of pixels: the reference an int8 model is checked against."""
        run = engine_for("float32").compile(self.backbone.model, self.backbone.metadata,
                                            "float32", views=1)
        return np.concatenate([np.asarray(run(pixels[i:i + 32]))[:, 0]
                               for i in range(0, len(pixels), 32)])

    def _settle(self) -> None:
        """int8 passes its check before anything is stored under its key, or falls back."""
        if self.precision != "int8" or self.int8 is not None:
            return
        from resnet_ft.features.engines.openvino import Refused

        try:
            self.int8 = dict(getattr(self.function(1), "check", None) or {})
        except Refused as refusal:
            fallback = keras_precision("int8")
            self.console.print(f"int8 refused: {refusal}; computing in {fallback} instead",
                               markup=False, highlight=False)
            self.int8 = {**refusal.check, "refused": str(refusal), "fallback": fallback}
            self._use(fallback)

    def pooled(self, paths: list[Path], views: int,
               description: str = EXTRACTING) -> FeatureTable:
        """Pooled features ``(files, views, C)`` of ``paths``, from the store where possible."""
        self._settle()
        return _finite(paths, extract(
            paths, _Lazy(self, views, None), self.preprocessing, views=views, cache=self.store,
            console=self.console, description=description, strategy=self.strategy,
            replicas=self.engine.replicated))

    def boundary(self, paths: list[Path], views: int, cut: str,
                 description: str = "caching frozen stages") -> FeatureTable:
        """The output of the stages below ``cut`` (``--trainable``'s mode), stored apart."""
        self._settle()
        store = None
        if self.store is not None:
            store = FeatureCache(self.store.base, self.store.backbone_id, self.preprocessing,
                                 kind=f"boundary:{cut}", warn=self._say)
        return _finite(paths, extract(
            paths, _Lazy(self, views, cut), self.preprocessing, views=views, cache=store,
            console=self.console, description=description, strategy=self.strategy,
            batch_size=BOUNDARY_BATCH, pool=False, replicas=self.engine.replicated))

    def decodable(self, paths: list[Path]) -> dict[int, str]:
        """``{index: reason}`` of the files that cannot be decoded (nothing computed)."""
        return check_decodable(paths, self.preprocessing, self.console)


def _require_finite(backbone: Backbone) -> None:
    """Refuse a backbone holding NaN or infinity: compiled graphs can turn those into finite
    garbage (measured: an infinite BatchNorm beta gave the same finite features for every
    image once grappler had optimised the graph), so checking outputs alone is not enough."""
    bad = [weight.path for weight in backbone.model.weights
           if not np.isfinite(np.asarray(weight)).all()]
    if bad:
        shown = ", ".join(bad[:LISTED]) + (f" and {len(bad) - LISTED} more"
                                           if len(bad) > LISTED else "")
        name = f" {backbone.source}" if backbone.source else ""
        raise NonFiniteError(f"the backbone{name} holds NaN or infinity in {len(bad)} "
                             f"weight(s) ({shown}): its features would be garbage. Convert the "
                             "checkpoint again (convert refuses non-finite weights)")


def _finite(paths: list[Path], table: FeatureTable) -> FeatureTable:
    """``table``, unless the backbone computed NaN or infinity for some file: then a one-line
    error naming them (nothing of theirs was stored)."""
    if not table.nonfinite:
        return table
    items = sorted(table.nonfinite.items())
    listing = "; ".join(f"{paths[i]}: {reason}" for i, reason in items[:LISTED])
    more = f"; and {len(items) - LISTED} more" if len(items) > LISTED else ""
    raise NonFiniteError(
        f"the backbone computes non-finite features for {len(items)} of {len(paths)} file(s) "
        f"({listing}{more}); none of them was stored. Check the backbone (convert refuses "
        "non-finite weights; a backbone edited since may hold some), or use --precision "
        "float32")


class _Lazy:
    """The featurizer's function, compiled only when something must be computed (a warm store
    needs no model); extraction resolves it before its first batch, outside any replica."""

    def __init__(self, featurizer: Featurizer, views: int, cut: str | None) -> None:
        self.featurizer, self.views, self.cut = featurizer, views, cut

    def resolve(self) -> Function:
        return self.featurizer.function(self.views, self.cut)


def run_calibration(run: Run, precision: str) -> CalibrationSample | None:
    """The int8 calibration sample a trained run used (its own training images, count and
    seed), so its quantised model and features are found again; ``None`` unless int8."""
    if precision != "int8":
        return None
    try:
        config = run.config()
    except InputError:
        config = TrainConfig()
    return calibration_sample(run.samples("train"), config.calibration_images, config.seed)


def store_root(cache_dir: str | Path | None) -> Path:
    """Where features are stored: ``cache_dir``, or the default cache location."""
    return Path(cache_dir) if cache_dir else default_cache_dir()


__all__ = ["EXTRACT_BATCH", "Backbone", "Featurizer", "store_root"]
