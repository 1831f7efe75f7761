"""Run an ONNX export with onnxruntime, numpy and Pillow only, in a fresh process.

Usage: ``python -I onnx_worker.py MODEL.onnx PIXELS.npy IMAGE...``; prints one JSON object:
the probabilities for the pixels in ``PIXELS.npy`` (decoded by resnet-ft's own pipeline
in the test), those for ``IMAGE...`` preprocessed with Pillow the way docs/commands/export.md shows,
the labels, and the loaded modules of interest.

TensorFlow, Keras and resnet_ft are made unimportable first (``sys.modules[name] = None``
is how Python marks a module as absent), so any use of them fails the run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

for _absent in ("tensorflow", "keras", "tf_keras", "resnet_ft"):
    sys.modules[_absent] = None  # type: ignore[assignment]

import numpy as np  # noqa: E402 - the blocks above must come first
import onnxruntime as ort  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402


def readme_pixels(path: str, size: int, fraction: float) -> np.ndarray:
    """The documented preprocessing (docs/commands/export.md): shorter side to
    round(size / fraction), centre crop."""
    image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    scale = round(size / fraction) / min(image.size)
    width, height = (max(size, round(side * scale)) for side in image.size)
    image = image.resize((width, height), Image.BILINEAR)  # antialiased when shrinking
    left, top = (width - size) // 2, (height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), np.float32)


def main(argv: list[str]) -> None:
    """Classify both inputs and print JSON."""
    model, pixels_file, *images = argv
    meta = json.loads(Path(model).with_suffix(".resnet_ft.json").read_text(encoding="utf-8"))
    size = meta["preprocessing"]["image_size"]
    fraction = meta["preprocessing"]["crop_fraction"]
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    given = session.run(None, {"pixels": np.load(pixels_file)})[0]
    ours = session.run(None, {"pixels": np.stack([readme_pixels(p, size, fraction)
                                                  for p in images])})[0]
    watched = ("tensorflow", "keras", "tf_keras", "resnet_ft")
    print(json.dumps({
        "given": given.tolist(), "pillow": ours.tolist(), "labels": meta["labels"],
        "outputs": [output.name for output in session.get_outputs()],
        "modules": sorted(name for name, module in sys.modules.items()
                          if module is not None and name.split(".")[0] in watched),
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
