"""The published checkpoints resnet-ft knows by name, and what their publishers state.

A preset is a description, never code: where the file is, how it is checked,
which family's reader takes it, and the facts ``convert --list`` shows. Adding
a checkpoint is adding one entry; fetching, checking, converting and caching
are :mod:`resnet_ft.presets.cache`'s, the same for every entry.

Facts are the publishers' own: top-1 accuracies from TF-slim's README table,
the keras.applications documentation and torchvision's weight documentation;
``None`` where a publisher states none for these weights. Checksums are pinned
where one is published (keras.applications' md5s are in Keras' source,
``keras/src/applications/resnet.py``); the others are pinned on first download
(:mod:`resnet_ft.presets.cache`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from resnet_ft.errors import InputError
from resnet_ft.util.hashing import Checksum

#: Parameters of each depth without its classifier (torchvision's counts less the 1000-way
#: head): with the head's, the size ``--list`` shows before a file has been downloaded.
BACKBONE_PARAMETERS = {50: 23_508_032, 101: 42_500_160, 152: 58_143_808}


@dataclass(frozen=True)
class Preset:
    """One published checkpoint: where it is, how to check it, what it is."""

    name: str
    family: str
    depth: int
    url: str
    pretraining: str
    classes: int
    licence: str
    top1: float | None = None
    checksum: Checksum | None = None
    #: The checkpoint inside a downloaded tar archive (TF-slim's releases).
    member: str | None = None

    @property
    def filename(self) -> str:
        """The published file's name: the URL's last part (also its name on a mirror)."""
        return self.url.rsplit("/", 1)[-1]

    @property
    def slug(self) -> str:
        """The name as one path component (``slim/resnet_v1_50`` -> ``slim--resnet_v1_50``)."""
        return self.name.replace("/", "--")

    @property
    def approximate_bytes(self) -> int:
        """float32 bytes of the weights: a checkpoint's size to within its metadata."""
        return (BACKBONE_PARAMETERS[self.depth] + 2049 * self.classes) * 4

    def row(self) -> dict[str, object]:
        """The facts ``convert --list --json`` prints for this preset."""
        return {
            "name": self.name, "family": self.family, "depth": self.depth,
            "pretraining": self.pretraining, "classes": self.classes, "top1": self.top1,
            "licence": self.licence, "url": self.url,
            "checksum": str(self.checksum) if self.checksum else None,
        }


_SLIM = "http://download.tensorflow.org/models/resnet_v1_{depth}_2016_08_28.tar.gz"
_SLIM_V2 = "http://download.tensorflow.org/models/resnet_v2_{depth}_2017_04_14.tar.gz"
_BIT = "https://storage.googleapis.com/bit_models/BiT-M-R{depth}x1.npz"
_KERAS = ("https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
          "resnet{depth}{version}_weights_tf_dim_ordering_tf_kernels.h5")
_TIMM = "https://huggingface.co/timm/{model}/resolve/main/model.safetensors"
# keras.applications' own md5 of each published file with its classifier.
_KERAS_MD5 = {(50, ""): "2cb95161c43110f7111970584f804107",
              (101, ""): "f1aeb4b969a6efcfb50fad2f0c20cfc5",
              (152, ""): "100835be76be38e30d865e96f2aaae62",
              (50, "v2"): "3ef43a0b657b3be2300d5770ece849e0",
              (101, "v2"): "6343647c601c52e1368623803854d971",
              (152, "v2"): "a49b44d1979771252814e80f8ec446f9"}
_SLIM_TOP1 = {50: 75.2, 101: 76.4, 152: 76.8}
_SLIM_V2_TOP1 = {50: 75.6, 101: 77.0, 152: 77.8}
_KERAS_TOP1 = {(50, ""): 74.9, (101, ""): 76.4, (152, ""): 76.6,
               (50, "v2"): 76.0, (101, "v2"): 77.2, (152, "v2"): 78.0}
# torchvision's IMAGENET1K_V1 (tv_in1k) and IMAGENET1K_V2 (tv2_in1k) weights.
_TV_TOP1 = {(50, "tv"): 76.13, (101, "tv"): 77.374, (152, "tv"): 78.312,
            (50, "tv2"): 80.858, (101, "tv2"): 81.886}


def _slim(depth: int) -> Preset:
    return Preset(f"slim/resnet_v1_{depth}", "slim", depth, _SLIM.format(depth=depth),
                  "ImageNet-1k", 1000, "Apache-2.0", _SLIM_TOP1[depth],
                  member=f"resnet_v1_{depth}.ckpt")


def _slim_v2(depth: int) -> Preset:
    # 1001 classes: index 0 is slim's background class
    return Preset(f"slim/resnet_v2_{depth}", "slim_v2", depth, _SLIM_V2.format(depth=depth),
                  "ImageNet-1k", 1001, "Apache-2.0", _SLIM_V2_TOP1[depth],
                  member=f"resnet_v2_{depth}.ckpt")


def _bit(depth: int, layout: str) -> Preset:
    if layout == "timm":
        model = f"resnetv2_{depth}x1_bit.goog_in21k"
        return Preset(f"timm/{model}", "bit", depth, _TIMM.format(model=model),
                      "ImageNet-21k", 21843, "Apache-2.0")
    return Preset(f"bit/BiT-M-R{depth}x1", "bit_google", depth, _BIT.format(depth=depth),
                  "ImageNet-21k", 21843, "Apache-2.0")


def _keras(depth: int, version: str = "") -> Preset:
    return Preset(f"keras/resnet{depth}{version}", "keras_v2" if version else "keras", depth,
                  _KERAS.format(depth=depth, version=version), "ImageNet-1k", 1000, "MIT",
                  _KERAS_TOP1[depth, version], Checksum("md5", _KERAS_MD5[depth, version]))


def _timm(depth: int, tag: str) -> Preset:
    model = f"resnet{depth}.{tag}_in1k"
    licence = "BSD-3-Clause" if tag.startswith("tv") else "Apache-2.0"
    return Preset(f"timm/{model}", "torchvision", depth, _TIMM.format(model=model),
                  "ImageNet-1k", 1000, licence, _TV_TOP1.get((depth, tag)))


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        *(_slim(depth) for depth in (50, 101, 152)),
        *(_slim_v2(depth) for depth in (50, 101, 152)),
        *(_keras(depth) for depth in (50, 101, 152)),
        *(_keras(depth, "v2") for depth in (50, 101, 152)),
        *(_timm(depth, "tv") for depth in (50, 101, 152)),
        *(_timm(depth, "tv2") for depth in (50, 101)),
        _timm(50, "a1"),
        *(_bit(depth, "timm") for depth in (50, 101)),
        *(_bit(depth, "google") for depth in (50, 101)),
    )
}


def find_preset(name: str) -> Preset:
    """The preset called ``name``, or a one-line error naming the closest ones."""
    if name in PRESETS:
        return PRESETS[name]
    close = difflib.get_close_matches(name, list(PRESETS), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise InputError(f"unknown preset {name!r} and no such file{hint} "
                     "(resnet-ft convert --list shows the names)")


#: The first parts of the names (``slim``, ``keras``, ``timm``, ``bit``).
_PUBLISHERS = frozenset(name.split("/", 1)[0] for name in PRESETS)


def looks_like_preset(spec: str | Path) -> bool:
    """A ``publisher/name`` string that is not an existing path: meant as a preset name."""
    text = str(spec)
    return not Path(text).exists() and text.split("/", 1)[0] in _PUBLISHERS
