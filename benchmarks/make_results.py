"""Write benchmarks/RESULTS.md from the figures in benchmarks/out/*.json."""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def load(name: str) -> dict:
    return json.loads((OUT / f"{name}.json").read_text())


def cell(figure: dict, unit: str = "s", digits: int = 1) -> str:
    return (f"{figure['median']:.{digits}f} {unit} (min {figure['min']:.{digits}f}, "
            f"max {figure['max']:.{digits}f}, n={figure['runs']})")


def verdict(value: float, target: float, at_most: bool) -> str:
    met = value <= target if at_most else value >= target
    return f"**{value:.2f}** ({'≤' if at_most else '≥'} {target}: {'met' if met else 'NOT met'})"


def tried(backbone: dict) -> list[str]:
    """One table row per measured variant of our backbone (and oneDNN off, if measured)."""
    results = backbone["results"]
    plain = results["ours"]["images_per_s"]
    names = {
        "ours": f"plain tf.function, batch {backbone['batch']} (shipped)",
        "ours_xla": "XLA `jit_compile=True`",
        "ours_bn_folded": "BatchNorm folded into the convolutions",
        "ours_batch_8": "batch 8",
        "ours_batch_32": "batch 32",
        "keras_applications": "(reference) keras.applications.ResNet101",
        "tf_slim": "(reference) tf-slim resnet_v1_101 graph",
    }
    rows = [f"| {names[k]} | {v['images_per_s']:.1f} | {v['images_per_s'] / plain:.2f} |"
            for k, v in results.items() if k in names]
    if (OUT / "backbone_no_onednn.json").exists():
        off = load("backbone_no_onednn")["results"]["ours"]["images_per_s"]
        rows.append(f"| oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`) | {off:.1f} | {off / plain:.2f} |")
    return rows


def main() -> None:
    backbone, extraction = load("backbone"), load("extraction")
    train, memory, predict = load("train_epochs"), load("memory"), load("predict")
    boundary = load("boundary")
    m = backbone["machine"]
    f = train["figures"]
    r = backbone["results"]
    lines = [
        "# Benchmark results",
        "",
        "Regenerate with `make bench` (runs `benchmarks/run_all.sh`; every script also has a",
        "`--quick` smoke mode). Figures are medians of repeated runs with min/max; each ratio",
        "compares figures measured in the same run of the script.",
        "",
        f"Machine: {m['cpu_count']} cores ({m['processor']}), Python {m['python']}, "
        f"TensorFlow {m['tensorflow']}, NumPy {m['numpy']}. Images: {m['data']}. Backbone:",
        "slim ResNet-101 (a stand-in checkpoint: speed does not depend on weight values).",
        "",
        "| # | figure | measured | ratio (target) |",
        "|---|---|---|---|",
        f"| 1 | `train`, 20 epochs, flips, cold cache ({train['images']} images, "
        f"{train['image_size']} px) | {cell(f['cold_20_epochs'])} vs 1 epoch "
        f"{cell(f['cold_1_epoch'])} | {verdict(train['ratio_20_over_1'], 1.3, True)} |",
        f"| 1b | `train --no-cache`, 20 epochs ({train['no_cache_images']} images) | "
        f"{cell(f['small_no_cache_20_epochs'])} vs cached 1 epoch "
        f"{cell(f['small_cold_1_epoch'])} | **{train['ratio_no_cache_20_over_cached_1']:.1f}x** "
        "(the tutorial's loop; shown, no target) |",
        f"| 2 | second `train`, other head hyper-parameters, warm cache | "
        f"{cell(f['warm_rerun'])} vs cold {cell(f['cold_20_epochs'])} | "
        f"{verdict(train['ratio_warm_over_cold'], 0.2, True)} |",
        f"| 3 | extraction from JPEG files vs decoded in memory ({extraction['images']} images, "
        f"batch {extraction['batch']}) | {cell(extraction['files_images_per_s'], 'img/s')} vs "
        f"{cell(extraction['memory_images_per_s'], 'img/s')} | "
        f"{verdict(extraction['ratio_files_over_memory'], 0.9, False)} |",
        f"| 4 | backbone forward, batch {backbone['batch']}, {backbone['size']} px: ours "
        f"{r['ours']['images_per_s']:.1f} img/s (XLA {r['ours_xla']['images_per_s']:.1f}) | "
        f"tf-slim graph {r['tf_slim']['images_per_s']:.1f} img/s, keras.applications "
        f"{r['keras_applications']['images_per_s']:.1f} img/s | vs slim "
        f"{verdict(backbone['ratio_vs_slim'], 0.95, False)}, vs keras "
        f"{verdict(backbone['ratio_vs_keras'], 0.95, False)} |",
        f"| 5 | peak RSS of `train` ({memory['images']} images, {memory['image_size']} px) | "
        f"{cell(memory['peak_rss_gb'], 'GB', 2)} | "
        f"{verdict(memory['peak_rss_gb']['median'], 3.0, True)} |",
        f"| 6 | `predict` one image, whole process | {cell(predict['predict_one_image_s'])} "
        f"(import {predict['phases_s']['import']['median']:.1f} s, model load "
        f"{predict['phases_s']['load']['median']:.1f} s, inference "
        f"{predict['phases_s']['inference']['median']:.2f} s); `resnet-ft --help` "
        f"{cell(predict['help_s'], 's', 2)} | --help "
        f"{verdict(predict['help_s']['median'], 1.0, True)} |",
        f"| #8 | `--trainable block4` phase-2 epoch on the boundary cache vs a full forward "
        f"pass ({boundary['images']} images) | {cell(boundary['block4_epoch_s'])} vs "
        f"{cell(boundary['full_forward_s'])} | "
        f"{verdict(boundary['ratio_epoch_over_forward'], 0.35, True)} |",
        "",
        "## What was tried for the backbone forward (figure 4)",
        "",
        "| variant | images/s | vs plain |",
        "|---|---|---|",
        *tried(backbone),
        "",
        (HERE / "NOTES.md").read_text() if (HERE / "NOTES.md").exists() else "",
    ]
    (HERE / "RESULTS.md").write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
