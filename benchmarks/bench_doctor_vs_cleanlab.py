"""doctor against cleanlab's Datalab and CleanVision on the same images, features and plants.

A data set from the shared flowers sample (``--per-class`` photos of each of
the 5 classes) with planted problems whose files are known:

* label flips: 12 photos moved to another class's folder;
* near copies: 12 photos copied within their class (resize, JPEG, 90 % crop,
  flip; 3 each); both files of a pair are the truth;
* outliers: 5 generated non-photos (noise at several scales);
* quality damage: 4 photos per check (from outside the base set) damaged as
  ``bench_quality.py`` damages them (darkened, washed out, blurred 2 %,
  flattened, cropped to 10:1, downscaled 8x, desaturated).

``doctor`` runs once to fill the feature cache, then is timed on the warm
cache (all findings, 5-fold heads); its fingerprinting pass (hashes and
quality) is timed alone too. Datalab gets the same pooled features (plain
view) and out-of-fold probabilities from a 5-fold logistic regression on
them (scikit-learn, timed with the label check), each issue type timed alone.
Datalab's issue managers are called directly (see ``_Lab``: Datalab's table
needs Hugging Face ``datasets``). CleanVision reads the image files. Precision
and recall are per file.

    python benchmarks/bench_doctor_vs_cleanlab.py --backbone B.keras [--per-class 50]
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_quality import damaged
from common import SHARED, machine, save

DAMAGE = {"dark": "dark", "overexposed": "overexposed_washed", "blurry": "blurry_2",
          "low_information": "low_information", "odd_aspect_ratio": "odd_aspect_ratio",
          "tiny": "tiny", "grayscale": "grayscale"}
#: CleanVision's name for each doctor check.
CLEANVISION = {"dark": "dark", "overexposed": "light", "blurry": "blurry",
               "low_information": "low_information", "odd_aspect_ratio": "odd_aspect_ratio",
               "tiny": "odd_size", "grayscale": "grayscale"}


def plant(root: Path, per_class: int, seed: int = 0) -> dict[str, object]:
    """Build the data set; return the truth: files per kind (and per quality check)."""
    rng = np.random.default_rng(seed)
    classes = sorted(c.name for c in SHARED.iterdir() if c.is_dir())
    photos = {c: sorted((SHARED / c).glob("*.jpg")) for c in classes}
    base: list[Path] = []
    for name in classes:
        (root / name).mkdir(parents=True)
        for photo in photos[name][:per_class]:
            base.append(root / name / photo.name)
            shutil.copyfile(photo, base[-1])
    chosen = rng.permutation(len(base))
    flips, sources = [base[i] for i in chosen[:12]], [base[i] for i in chosen[12:24]]
    truth: dict[str, object] = {"label": set(), "near": set(), "outlier": set(), "quality": {}}
    for index, source in enumerate(sources):
        kind = ("resize", "jpeg", "crop", "flip")[index % 4]
        image = Image.open(source).convert("RGB")
        copy = source.parent / f"copy_{kind}_{source.name}"
        if kind == "resize":
            image = image.resize((image.width * 2 // 3, image.height * 2 // 3))
        elif kind == "crop":
            image = image.crop((image.width // 20, image.height // 20, image.width * 19 // 20,
                                image.height * 19 // 20))
        elif kind == "flip":
            image = ImageOps.mirror(image)
        image.save(copy, quality=70 if kind == "jpeg" else 95)
        truth["near"] |= {str(source), str(copy)}
    for source in flips:
        target = classes[(classes.index(source.parent.name) + 1 + int(rng.integers(4))) % 5]
        moved = root / target / f"flipped_{source.name}"
        source.rename(moved)
        truth["label"].add(str(moved))
    for number in range(5):
        cells = 4 * 2**number
        noise = rng.integers(0, 256, (cells, cells, 3), np.uint8)
        path = root / classes[number] / f"outlier_{number}.jpg"
        Image.fromarray(noise).resize((320, 240), Image.Resampling.NEAREST).save(path, quality=95)
        truth["outlier"].add(str(path))
    spare = [p for c in classes for p in photos[c][per_class:]]
    picks = iter(rng.permutation(len(spare)))
    for check, kind in DAMAGE.items():
        truth["quality"][check] = set()
        for _ in range(4):
            photo = spare[next(picks)]
            path = root / photo.parent.name / f"damaged_{check}_{photo.name}"
            damaged(Image.open(photo).convert("RGB"), kind).save(path, quality=95)
            truth["quality"][check].add(str(path))
    return truth


def score(found: set[str], truth: set[str], seconds: float) -> dict[str, float]:
    hits = len(found & truth)
    return {"precision": hits / len(found) if found else float("nan"),
            "recall": hits / len(truth), "found": len(found), "seconds": seconds}


def run_doctor(config, out: Path) -> tuple[dict, float, float]:
    from rich.console import Console

    from resnet_ft.diagnostics.fingerprints import fingerprints
    from resnet_ft.diagnostics.run import diagnose

    quiet = Console(file=io.StringIO())
    diagnose(config, out / "cold", console=quiet)  # fills the feature cache
    started = time.perf_counter()
    report = diagnose(config, out / "warm", console=quiet)
    total = time.perf_counter() - started
    paths = sorted(p for p in Path(config.data_dir).rglob("*.jpg"))
    started = time.perf_counter()
    fingerprints(paths, quiet)
    return report.findings, total, time.perf_counter() - started


def doctor_scores(findings: dict, truth: dict, total: float, prints: float) -> dict:
    near = {r[c] for k in ("near_duplicates", "exact_duplicates") for r in findings[k]
            for c in ("file_a", "file_b")}
    result = {"label": score({r["file"] for r in findings["label_issues"]}, truth["label"], total),
              "near": score(near, truth["near"], total),
              "outlier": score({r["file"] for r in findings["outliers"]}, truth["outlier"], total)}
    every = set().union(*truth["quality"].values())
    result["quality"] = score({r["file"] for r in findings["quality"]}, every, prints)
    for check, files in truth["quality"].items():
        result[f"quality/{check}"] = score(
            {r["file"] for r in findings["quality"] if r["check"] == check}, files, prints)
    return result


class _Lab:
    """What Datalab's issue managers read from their Datalab: labels, class names, info.

    ``Datalab`` itself needs Hugging Face ``datasets`` for its table of data,
    which this environment lacks; its issue managers (the code
    ``find_issues`` runs per issue type) need only this.
    """

    def __init__(self, labels: np.ndarray, classes: int) -> None:
        self.labels, self._label_map = labels, {i: str(i) for i in range(classes)}
        self.info: dict[str, dict] = {"statistics": {}}

    def get_info(self, name: str) -> dict:
        return self.info.setdefault(name, {})


def datalab_scores(config, truth: dict) -> dict:
    from cleanlab.datalab.internal.issue_manager.duplicate import NearDuplicateIssueManager
    from cleanlab.datalab.internal.issue_manager.label import LabelIssueManager
    from cleanlab.datalab.internal.issue_manager.outlier import OutlierIssueManager
    from rich.console import Console
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    from resnet_ft.training.crossval.features import load_features

    data = load_features(config, 2, Console(file=io.StringIO()))
    files = np.array([str(s.path) for s in data.samples])
    features, labels = data.values[:, 0], data.labels
    started = time.perf_counter()
    probs = cross_val_predict(LogisticRegression(max_iter=1000), features, labels, cv=5,
                              method="predict_proba")
    fit = time.perf_counter() - started
    result = {"heldout_accuracy": float((probs.argmax(1) == labels).mean())}
    for kind, manager in (("label", LabelIssueManager), ("near", NearDuplicateIssueManager),
                          ("outlier", OutlierIssueManager)):
        found = manager(_Lab(labels, len(data.split.labels)))
        started = time.perf_counter()
        found.find_issues(features=features, pred_probs=probs)
        seconds = time.perf_counter() - started + (fit if kind == "label" else 0.0)
        flagged = found.issues[f"is_{found.issue_name}_issue"].to_numpy()
        result[kind] = score(set(files[flagged]), truth[kind], seconds)
    return result


def cleanvision_scores(root: Path, truth: dict) -> dict:
    from cleanvision import Imagelab

    paths = sorted(str(p) for p in root.rglob("*.jpg"))
    lab = Imagelab(filepaths=paths)
    started = time.perf_counter()
    lab.find_issues(issue_types={name: {} for name in CLEANVISION.values()})
    quality_seconds = time.perf_counter() - started
    issues = lab.issues
    every = set().union(*truth["quality"].values())
    flagged = set()
    result = {}
    for check, name in CLEANVISION.items():
        found = set(issues.index[issues[f"is_{name}_issue"]])
        flagged |= found
        result[f"quality/{check}"] = score(found, truth["quality"][check], quality_seconds)
    result["quality"] = score(flagged, every, quality_seconds)
    lab = Imagelab(filepaths=paths)
    started = time.perf_counter()
    lab.find_issues(issue_types={"exact_duplicates": {}, "near_duplicates": {}})
    issues = lab.issues
    found = set(issues.index[issues["is_exact_duplicates_issue"]
                             | issues["is_near_duplicates_issue"]])
    result["near"] = score(found, truth["near"], time.perf_counter() - started)
    return result


def main() -> None:
    import argparse

    from resnet_ft.config import make_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", type=Path, required=True)
    parser.add_argument("--per-class", type=int, default=50)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--quick", action="store_true", help="smoke run: 12 photos per class")
    args = parser.parse_args()
    per_class = 12 if args.quick else args.per_class
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        truth = plant(root, per_class)
        config = make_config({"epochs": 20, "batch_size": 32}, {
            "data_dir": str(root), "backbone": str(args.backbone), "image_size": args.image_size,
            "cache_dir": str(Path(tmp) / "cache"), "precision": "float32"})
        findings, total, prints = run_doctor(config, Path(tmp) / "report")
        result = {"machine": machine(), "images": sum(1 for _ in root.rglob("*.jpg")),
                  "planted": {k: len(v) for k, v in truth.items() if k != "quality"}
                  | {"quality": sum(len(v) for v in truth["quality"].values())},
                  "doctor": doctor_scores(findings, truth, total, prints),
                  "datalab": datalab_scores(config, truth),
                  "cleanvision": cleanvision_scores(root, truth)}
    save("doctor_vs_cleanlab", result)


if __name__ == "__main__":
    main()
