"""Doctor's image-quality checks: recall on damaged copies, false flags on real photos.

Every photo of the shared flowers sample is scored as it is (the false-flag
rate of each check: the share of real photos it flags) and as seven damaged
copies, one per check (its recall: the share of copies the check flags):

* darkened: brightness x 0.25
* overexposed: brightness x 3 (clipped), and washed out (70 % of the way to white)
* blurred: Gaussian blur, radius 1 % and 2 % of the long side
* flattened: contrast x 0.05         * cropped to 10:1 (a centred strip)
* tiny: downscaled 8x                * desaturated: grey, saved as RGB JPEG

Copies are saved as JPEG (quality 95) and scored through doctor's own
fingerprinting pass. Percentiles of every score on the clean photos and on
the copies are saved too: they are what the thresholds were set from.

    python benchmarks/bench_quality.py [--photos 750] [--quick]
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, machine, save


def damaged(image: Image.Image, kind: str) -> Image.Image:
    """One damaged copy of an RGB photo (see the module doc)."""
    if kind == "dark":
        return ImageEnhance.Brightness(image).enhance(0.25)
    if kind == "overexposed_x3":
        return ImageEnhance.Brightness(image).enhance(3.0)
    if kind == "overexposed_washed":
        return Image.blend(image, Image.new("RGB", image.size, "white"), 0.7)
    if kind.startswith("blurry"):
        share = 0.01 if kind == "blurry_1" else 0.02
        return image.filter(ImageFilter.GaussianBlur(share * max(image.size)))
    if kind == "low_information":
        return ImageEnhance.Contrast(image).enhance(0.05)
    if kind == "odd_aspect_ratio":
        strip = max(image.width // 10, 1)
        top = (image.height - strip) // 2
        return image.crop((0, top, image.width, top + strip))
    if kind == "tiny":
        return image.resize((max(image.width // 8, 1), max(image.height // 8, 1)),
                            Image.Resampling.BOX)
    return ImageOps.grayscale(image).convert("RGB")


KINDS = ("dark", "overexposed_x3", "overexposed_washed", "blurry_1", "blurry_2",
         "low_information", "odd_aspect_ratio", "tiny", "grayscale")


def scores_of(paths: list[Path]) -> np.ndarray:
    """Doctor's quality scores of the files (its fingerprinting pass)."""
    from rich.console import Console

    from resnet_ft.diagnostics.fingerprints import fingerprints

    prints = fingerprints(paths, Console(file=io.StringIO()))
    assert not prints.errors, prints.errors
    return prints.quality


def percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": float(np.percentile(values, q)) for q in (0, 1, 5, 50, 95, 99, 100)}


def main() -> None:
    import argparse

    from resnet_ft.diagnostics.quality import CHECKS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=750)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 photos")
    args = parser.parse_args()
    photos = sorted(SHARED.glob("*/*.jpg"))[: 20 if args.quick else args.photos]
    names = [c.name for c in CHECKS]
    started = time.perf_counter()
    clean = scores_of(photos)
    result: dict[str, object] = {
        "machine": machine(), "photos": len(photos),
        "clean_seconds_per_image": (time.perf_counter() - started) / len(photos),
        "thresholds": {c.name: c.threshold for c in CHECKS}, "checks": {},
    }
    flags = np.stack([c.flags(clean[:, i]) for i, c in enumerate(CHECKS)], 1)
    result["clean_flagged_by_any"] = float(flags.any(1).mean())
    with tempfile.TemporaryDirectory() as tmp:
        for kind in KINDS:
            paths = []
            for index, photo in enumerate(photos):
                paths.append(Path(tmp) / f"{kind}_{index}.jpg")
                damaged(Image.open(photo).convert("RGB"), kind).save(paths[-1], quality=95)
            column = names.index(kind.rsplit("_", 1)[0] if kind not in names else kind)
            copies = scores_of(paths)
            check = CHECKS[column]
            result["checks"][kind] = {
                "recall": float(check.flags(copies[:, column]).mean()),
                "false_flag_rate": float(flags[:, column].mean()),
                "false_flags": int(flags[:, column].sum()),
                "clean": percentiles(clean[:, column]),
                "damaged": percentiles(copies[:, column]),
            }
    save("quality", result)


if __name__ == "__main__":
    main()
