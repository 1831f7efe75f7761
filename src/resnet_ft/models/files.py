"""Saving and loading resnet-ft models (`.keras` files), safely and atomically.

A model file carries its own metadata (:class:`~resnet_ft.models.families.BackboneInfo`
for backbones, the run's labels and preprocessing for classifiers) as an extra
``resnet_ft.json`` entry in the ``.keras`` zip archive. Keras ignores the entry;
we read it without deserialising any model, which keeps ``summary`` of a
file's metadata cheap.

Loading always uses ``safe_mode=True``: a ``.keras`` file cannot run arbitrary
code (e.g. a Lambda layer) on the user's machine.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resnet_ft.errors import InputError, one_line
from resnet_ft.util.atomic import atomic_path
from resnet_ft.util.recent import LastUsed
from resnet_ft.util.zipfiles import ZIP_DAMAGE

if TYPE_CHECKING:
    import keras

METADATA_ENTRY = "resnet_ft.json"


def save_model(model: keras.Model, path: str | Path, metadata: dict[str, Any]) -> None:
    """Write ``model`` with ``metadata`` embedded; ``path`` appears only when complete."""
    with atomic_path(path, suffix=".keras") as tmp:
        _skipsets_remembered()
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(METADATA_ENTRY, json.dumps(metadata, indent=2, sort_keys=True))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The resnet-ft description stored in a model file (empty for foreign files)."""
    try:
        with zipfile.ZipFile(path) as archive:
            if METADATA_ENTRY not in archive.namelist():
                return {}
            data = json.loads(archive.read(METADATA_ENTRY))
    except ZIP_DAMAGE as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InputError(f"not a Keras model file: {path} ({exc})") from exc
    if not isinstance(data, dict):
        raise InputError(f"not a Keras model file: {path} ({METADATA_ENTRY} is not an object)")
    return data


def backbone_metadata(path: str | Path) -> dict[str, Any]:
    """The backbone description (family, depth, ...) stored in a converted model file."""
    return read_metadata(path).get("backbone", {})


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` file in safe mode, turning every failure into a one-line error."""
    import keras

    from resnet_ft.models.preact import std_conv_class

    std_conv_class()  # registers BiT's weight-standardised convolution for deserialisation
    path = require_model_file(path)
    _skipsets_remembered()
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types; the user needs one line
        raise InputError(f"cannot load model {path}: {one_line(exc)}") from exc


def _skipsets_remembered() -> None:
    """Give Keras's saving walk the attribute skip-sets it asks for, computed once per thread.

    Keras 3 (3.10 to 3.15 at least) stores each skip-set under ``saving_attr_skipset_<type>``
    but looks it up under ``saving_attr_skiplist_<type>``, so every layer the walk visits
    builds a throw-away reference ``Layer`` to list its attributes again: 181 of them per
    ResNet-50 save or load (0.3 s of a 1.6 s load here). The value stored is Keras's own
    skip-set; the state is thread-local in Keras, hence the call before each save and load.
    Where Keras's internals differ (a later release), there is nothing to do.
    """
    try:
        from keras.src.backend.common import global_state
        from keras.src.saving.saving_lib import get_attr_skipset
    except ImportError:
        return
    for kind in ("Functional", "Layer", "Sequential"):
        key = f"saving_attr_skiplist_{kind}"
        if global_state.get_global_attribute(key) is None:
            global_state.set_global_attribute(key, get_attr_skipset(kind))


def require_model_file(path: str | Path) -> Path:
    """``path`` when it is a ``.keras`` archive; a one-line error naming what is wrong if not."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise InputError(f"not a Keras model file (.keras zip archive): {path}")
    return path


def load_backbone(path: str | Path) -> keras.Model:
    """Load a converted backbone: RGB pixels in [0, 255] -> last feature map (N, h, w, 2048).

    A backbone converted with ``--include-top`` also holds the ImageNet
    classifier as a second output; this returns the feature extractor alone.
    """
    import keras

    model = load_model(path)
    if len(model.outputs) == 1:
        return model
    return keras.Model(model.input, model.outputs[0], name=model.name)


class Recent:
    """The last ``size`` models loaded from files, each loaded once while its file stays the
    same file, for code that only reads them (computes with them, assembles them).

    A process that trains several heads on one backbone, or predicts, evaluates and
    exports one run (a notebook, ``report``, ``sweep``) would otherwise read the same
    100-200 MB file each time. The key is the file's identity (resolved path, inode,
    size, mtime), so a file written again (atomically: a new inode) is loaded again.
    Code that changes weights loads its own copy.
    """

    def __init__(self, size: int, load: Callable[[Path], keras.Model]) -> None:
        self.load = load
        self.kept: LastUsed[tuple[str, int, int, int], keras.Model] = LastUsed(size)

    def __call__(self, path: str | Path) -> keras.Model:
        return self.kept.get(_identity(path), lambda: self.load(Path(path)))

    def keep(self, path: str | Path, model: keras.Model) -> None:
        """Hold ``model`` as what ``path`` holds: the caller wrote the file from it, and
        nothing changes it any more (a run's classifier once the run is over)."""
        self.kept.get(_identity(path), lambda: model)


def _identity(path: str | Path) -> tuple[str, int, int, int]:
    """The key of a model file as it is now (a file written again is another file)."""
    path = Path(path)
    stat = require_model_file(path).stat()
    return str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns


#: :func:`load_backbone`, shared by the readers of one backbone file (features, the frozen
#: base of a head-only run's classifier); two are kept, so a sweep or notebook going back
#: and forth between two backbones reads neither again.
shared_backbone = Recent(2, lambda path: load_backbone(path))


def load_imagenet_classifier(path: str | Path) -> keras.Model:
    """Load the pixels -> ImageNet logits model of a backbone converted with ``--include-top``."""
    import keras

    model = load_model(path)
    if len(model.outputs) != 2:
        raise InputError(
            f"{path} has no ImageNet classifier; convert the checkpoint with --include-top"
        )
    return keras.Model(model.input, model.outputs[1], name=f"{model.name}_logits")
