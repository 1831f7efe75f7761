"""Report and test-time flips: what `evaluate --tta` costs from the cache and online, and `report`.

A head-only run trained with flips caches both views of every image, so
evaluating its own images with test-time flips should cost no backbone pass
("free"); a model without the cache runs the mirror through the network
(about twice the plain cost). Times, on N images of a run trained 1 epoch on
them: scoring plain / with flips, from the feature cache / online; then the
whole `report` (evaluation, thumbnails, Grad-CAM of the top losses, figures,
page) and its size on disk per image (thumbnails must keep it small).

    python benchmarks/bench_report.py --backbone B.keras [--images N] [--repeats R] [--quick]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset, machine, parser, repeat, save, timed


def main() -> None:
    args = parser(__doc__, images=200, quick_images=16).parse_args()

    from rich.console import Console

    from resnet_ft.cli import main as cli
    from resnet_ft.data.folders import scan
    from resnet_ft.evaluation.evaluate import cached_head, score
    from resnet_ft.evaluation.report import build_report
    from resnet_ft.inference.loaders import load_predictor

    quiet = Console(quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        data, run = dataset(Path(tmp) / "data", args.images), Path(tmp) / "run"
        assert cli(["train", str(data), "--backbone", str(args.backbone), "-o", str(run),
                    "--epochs", "1", "--image-size", str(args.image_size),
                    "--cache-dir", str(Path(tmp) / "cache")]) == 0
        predictor = load_predictor(run)
        _, samples, _ = scan(data, predictor.labels)
        cached = cached_head(run, predictor)
        assert cached is not None, "a head-only float32 run must be served by its cache"

        def scoring(views: int, use_cache: bool):
            return lambda: timed(lambda: score(predictor, samples, views=views, console=quiet,
                                               cached=cached if use_cache else None))

        times = {f"{name}_{where}_s": repeat(scoring(views, where == "cached"), args.repeats)
                 for name, views in (("plain", 1), ("tta", 2))
                 for where in ("cached", "online")}
        out = Path(tmp) / "report"
        report_s = repeat(lambda: timed(lambda: build_report(run, data, out=out,
                                                             console=quiet)), args.repeats)
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    save("report", {
        "machine": machine(), "images": len(samples), "image_size": args.image_size,
        **times, "report_s": report_s, "report_bytes_per_image": size / len(samples),
        "tta_cached_over_plain_cached": times["tta_cached_s"]["median"]
        / times["plain_cached_s"]["median"],
        "tta_online_over_plain_online": times["tta_online_s"]["median"]
        / times["plain_online_s"]["median"],
    })


if __name__ == "__main__":
    main()
