"""One small run and its report, built once per session for the report tests.

The run is float32 on purpose: the report reads its features from the cache
training filled, and ``predict`` (the independent reference the tests compare
with) runs the saved float32 model online; in a mixed-precision run those two
differ by rounding, and near-ties could flip. The evaluated set is the flowers
images plus three roses filed under daisy, so the run is sure to make
mistakes; ``doctor`` findings are hand-written CSV files about those copies.
"""

from __future__ import annotations

import csv
import functools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from resnet_ft.cli import main

#: A file a finding names that does not exist ("notes.csv" and "split.csv" are no findings).
MISSING = "gone/missing.jpg"


@dataclass(frozen=True)
class ReportCase:
    run: Path
    data: Path
    report: Path  # the report folder
    evaluated: Path  # `evaluate -o` folder: metrics.json, misclassified.csv
    predictions: tuple[dict, ...]  # `predict --json` on the data, top-k = every class
    doctor: Path
    copies: tuple[Path, ...]  # the roses filed under daisy

    @property
    def metrics(self) -> dict:
        return json.loads((self.evaluated / "metrics.json").read_text())

    def misclassified(self) -> list[dict[str, str]]:
        with (self.evaluated / "misclassified.csv").open(newline="") as handle:
            return list(csv.DictReader(handle))


@functools.cache
def report_case(flowers: Path, backbone: Path, root: Path) -> ReportCase:
    """Train, build the evaluated set, the findings, the report and the references (once)."""
    run = root / "run"
    assert _cli("train", flowers, "--backbone", backbone, "-o", run, "--epochs", 3,
                "--val-split", 0.25, "--cache-dir", root / "cache", "--image-size", 48,
                "--batch-size", 8, "--precision", "float32") == 0
    data = root / "test-set"
    shutil.copytree(flowers, data)
    copies = []
    for index, source in enumerate(sorted((flowers / "roses").glob("*.jpg"))[:3]):
        copies.append(data / "daisy" / f"filed_as_daisy_{index}.jpg")
        shutil.copy(source, copies[-1])
    doctor = _findings(root / "doctor", flowers, copies)
    report = root / "report"
    assert _cli("report", run, data, "-o", report, "--doctor", doctor) == 0
    evaluated = root / "evaluated"
    assert _cli("evaluate", run, data, "-o", evaluated, "--json") == 0
    predictions = tuple(_predict_json(run, data))
    return ReportCase(run, data, report, evaluated, predictions, doctor, tuple(copies))


def _cli(*args: object) -> int:
    return main([str(a) for a in args])


def _predict_json(run: Path, data: Path) -> list[dict]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert _cli("predict", run, data, "--json", "--top-k", 5) == 0
    return json.loads(out.getvalue())


def _findings(folder: Path, flowers: Path, copies: list[Path]) -> Path:
    """Hand-written doctor output: pairs, single files, a missing file, a file-less CSV."""
    folder.mkdir()
    originals = sorted((flowers / "roses").glob("*.jpg"))[:3]
    (folder / "exact_duplicates.csv").write_text(
        "file_a,file_b,score,reason\n" + "".join(
            f"{a},{b},1.0,identical bytes\n" for a, b in zip(originals, copies, strict=True)))
    (folder / "label_issues.csv").write_text(
        "file,given,suggested,score,reason\n"
        f"{copies[0]},daisy,roses,0.97,looks like roses\n"
        f"{MISSING},tulips,daisy,0.51,file no longer exists\n")
    (folder / "outliers.csv").write_text("file,score,reason\n")  # doctor found none
    tulips = sorted((flowers / "tulips").glob("*.jpg"))
    (folder / "near_duplicates.csv").write_text(  # more rows than are shown unfolded
        "file_a,file_b,score,reason\n" + "".join(
            f"{tulips[i % 8]},{tulips[(i + 1) % 8]},{0.99 - i / 100:.2f},similar features\n"
            for i in range(12)))
    (folder / "notes.csv").write_text("note\nnot a finding\n")
    (folder / "split.csv").write_text(f"file,label,subset\n{copies[0]},daisy,train\n")
    return folder
