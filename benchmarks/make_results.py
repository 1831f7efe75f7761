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
    """One table row per variant timed in figure 4's interleaved rounds (and oneDNN off)."""
    results = backbone["results"]
    slim = results["tf_slim"]["images_per_s"]
    names = {
        "ours_auto": f"ours, `--precision auto` ({backbone['auto']}), BN folded (shipped)",
        "ours_float32": "ours, `--precision float32`, BN folded (shipped)",
        "ours_float32_unfolded": "ours, float32, BN not folded (the saved backbone: predict)",
        "tf_slim": "(reference) tf-slim resnet_v1_101 graph, float32",
        "keras_applications": "(reference) keras.applications.ResNet101, float32",
    }
    rows = [f"| {names[k]} | {v['images_per_s']:.1f} | {v['images_per_s'] / slim:.2f} |"
            for k, v in results.items() if k in names]
    if (OUT / "backbone_no_onednn.json").exists():
        off = load("backbone_no_onednn")["results"]
        rows += [f"| oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`): {names[k]} | "
                 f"{off[k]['images_per_s']:.1f} | "
                 f"{off[k]['images_per_s'] / off['tf_slim']['images_per_s']:.2f} |"
                 for k in ("ours_auto", "ours_float32")]
    return rows


def peak_share(backbone: dict) -> str:
    """A sentence: GFLOP per image and what share of a matrix product's speed that reaches."""
    peaks = backbone["conv_peak_gflops"]
    compute = "bfloat16" if "bfloat16" in backbone["auto"] else "float32"
    return (f"ResNet-101's convolutions cost {backbone['gflop_per_image']:.1f} GFLOP per image at "
            f"{backbone['size']} px. One large {compute} 3x3 convolution (8x56x56x256, the same "
            f"oneDNN kernels), this machine's practical peak, runs at {peaks[compute]:.0f} "
            f"GFLOP/s (float32: {peaks['float32']:.0f}); "
            f"extraction with `auto` reaches {backbone['share_of_peak_auto']:.0%} of it, float32 "
            f"{backbone['share_of_peak_float32']:.0%} of float32's.")


def knob_rows() -> list[str]:
    """The settings tried on the `auto` extraction path, each in a fresh process."""
    knobs = load("bf16_knobs")["images_per_s"]
    shipped = knobs["shipped (batch 32)"]
    return ["### Settings tried on the `auto` path (fresh process each, alternating order)", "",
            "| setting | images/s | vs shipped |", "|---|---|---|",
            *(f"| {name} | {rate:.1f} | {rate / shipped:.2f} |" for name, rate in knobs.items()),
            ""]


def distill_rows(d: dict) -> list[str]:
    """Figure 11: the distilled ResNet-50 student against its ResNet-101 teacher."""
    return [
        f"| 11 | distilled ResNet-50 vs ResNet-101 teacher, `predict` ({d['images']} images) | "
        f"{cell(d['predict']['student_images_per_s'], 'img/s')} vs "
        f"{cell(d['predict']['teacher_images_per_s'], 'img/s')} | "
        f"{verdict(d['predict']['ratio_student_over_teacher'], 1.8, False)} |",
        f"| 11b | the same, exported SavedModel | "
        f"{cell(d['saved_model']['student_images_per_s'], 'img/s')} vs "
        f"{cell(d['saved_model']['teacher_images_per_s'], 'img/s')} | "
        f"{verdict(d['saved_model']['ratio_student_over_teacher'], 1.8, False)} |",
        f"| 11c | `distill` vs `train` of the teacher, cold caches | {cell(d['distill_s'])} vs "
        f"{cell(d['train_teacher_s'])} | **{d['ratio_distill_over_train']:.2f}** (shown) |",
    ]


def heads(r: dict) -> str:
    """The label-error heads' 20 epochs, and how many of them were timed (the rest scaled)."""
    total = f"{r['label_heads_20_epochs_s']:.0f} s"
    if r["label_epochs"] == 20:
        return total
    return f"{total}: {r['label_epochs']} of 20 epochs timed ({r['label_heads_s']:.0f} s), scaled"


def doctor_sweep_rows(doctor: dict, sweep: dict) -> list[str]:
    """Figures 12 and 13: doctor at 3,670 and 100,000 vectors; sweep trials per minute."""
    rows = [f"| 12 | `doctor` on {r['vectors']:,} feature vectors (simulated; feature search "
            f"{r['feature_search']}) | {r['doctor_s']:.0f} s (search {r['feature_search_s']:.0f} s,"
            f" hashes {r['hash_search_s']:.1f} s, label heads {heads(r)}) | "
            f"planted copies found {r['planted_recall']:.0%} (shown) |"
            for r in doctor["simulated"]]
    folds3, folds1 = sweep["folds_3"], sweep["folds_1"]
    rows += [
        f"| 13 | `sweep`, {sweep['trials']} trials, 3 folds, {sweep['images']} images, warm "
        f"cache ({folds3['pruned']} pruned) | {folds3['trials_per_min']:.1f} trials/min | "
        f"{verdict(folds3['trials_per_min'], 20, False)} |",
        f"| 13b | `sweep --folds 1` (the fixed validation split) | "
        f"{folds1['trials_per_min']:.1f} trials/min | "
        f"{verdict(folds1['trials_per_min'], 20, False)} |",
    ]
    return rows


def store_rows(store: dict, slope: dict) -> list[str]:
    """Figures 9 and 10: the sharded store at a million (simulated) images, memory per image."""
    small, large = slope["runs"]
    return [
        f"| 9 | store, {store['images']:,} simulated images x {store['views']} views: files | "
        f"{store['files']} (write {store['write_mb_per_s']:.0f} MB/s, read "
        f"{store['read_mb_per_s']:.0f} MB/s) | "
        f"{verdict(store['files'], store['files_target'], True)} |",
        f"| 9b | look up every entry in a fresh store | {store['lookup_s']:.1f} s | "
        f"{verdict(store['lookup_s'], 60, True)} |",
        f"| 9c | peak RssAnon, writing, looking up and one head epoch | "
        f"{store['peak_rss_anon_gb']:.2f} GB | {verdict(store['peak_rss_anon_gb'], 4.0, True)} |",
        f"| 9d | one head epoch (1024 units) from the shards vs the same steps on a batch in "
        f"RAM | {store['epoch_s']:.0f} s vs {store['arithmetic_s']:.0f} s | "
        f"**{store['ratio']:.2f}** (epoch / arithmetic; 1 = bounded by arithmetic) |",
        f"| 10 | `train` peak RssAnon, {small['images']:,} vs {large['images']:,} images "
        f"(64 px) | {small['peak_rss_anon_mb']:.0f} MB vs {large['peak_rss_anon_mb']:.0f} MB | "
        f"{verdict(slope['bytes_per_image'] / 1000, 1.0, True)} KB per image |",
    ]


def train_rows(train: dict) -> list[str]:
    """Figures 1 and 2: cold 20 epochs vs 1, no cache, a warm rerun."""
    f = train["figures"]
    return [
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
    ]


def extraction_rows(extraction: dict) -> list[str]:
    return [
        f"| 3 | extraction from JPEG files vs decoded in memory ({extraction['images']} images, "
        f"batch {extraction['batch']}) | {cell(extraction['files_images_per_s'], 'img/s')} vs "
        f"{cell(extraction['memory_images_per_s'], 'img/s')} | "
        f"{verdict(extraction['ratio_files_over_memory'], 0.9, False)} |"]


def backbone_rows(backbone: dict) -> list[str]:
    r = backbone["results"]
    return [
        f"| 4 | extraction forward, batch {backbone['batch']}, {backbone['size']} px, "
        f"interleaved: ours `auto` ({backbone['auto']}) "
        f"{r['ours_auto']['images_per_s']:.1f} img/s, ours float32 "
        f"{r['ours_float32']['images_per_s']:.1f} img/s | tf-slim graph float32 "
        f"{r['tf_slim']['images_per_s']:.1f} img/s | auto vs slim "
        f"{verdict(backbone['ratio_auto_vs_slim'], 2.0, False)} (an AMX target); float32 vs "
        f"slim {verdict(backbone['ratio_float32_vs_slim'], 0.95, False)} |"]


def memory_rows(memory: dict) -> list[str]:
    return [
        f"| 5 | peak RSS of `train` ({memory['images']} images, {memory['image_size']} px) | "
        f"{cell(memory['peak_rss_gb'], 'GB', 2)} | "
        f"{verdict(memory['peak_rss_gb']['median'], 3.0, True)} |"]


def predict_rows(predict: dict) -> list[str]:
    return [
        f"| 6 | `predict` one image, whole process | {cell(predict['predict_one_image_s'])} "
        f"(import {predict['phases_s']['import']['median']:.1f} s, model load "
        f"{predict['phases_s']['load']['median']:.1f} s, inference "
        f"{predict['phases_s']['inference']['median']:.2f} s); `resnet-ft --help` "
        f"{cell(predict['help_s'], 's', 2)} | --help "
        f"{verdict(predict['help_s']['median'], 1.0, True)} |"]


def boundary_rows(boundary: dict) -> list[str]:
    return [
        f"| #8 | `--trainable block4` phase-2 epoch on the boundary cache vs a full forward "
        f"pass ({boundary['images']} images) | {cell(boundary['block4_epoch_s'])} vs "
        f"{cell(boundary['full_forward_s'])} | "
        f"{verdict(boundary['ratio_epoch_over_forward'], 0.35, True)} |"]


def checksum_rows(c: dict) -> list[str]:
    """#23: shard verification against a warm `train`, and the hashes it was chosen from."""
    speeds = ", ".join(f"{name} {v['median']:.1f}" for name, v in c["hashes_gb_per_s"].items())
    v = c["verification"]
    return [
        f"| #23 | shard checksum verification vs a warm `train` ({c['images']} images, "
        f"{v['store_bytes'] / 1e6:.1f} MB store) | {cell(v['verify_s'], 's', 2)} vs "
        f"{cell(v['warm_train_s'])}; hashes GB/s: {speeds} | "
        f"{verdict(v['share'] * 100, 5, True)} % |"]


#: Said when the int8 backbone outruns the convolution chain meant to bound it.
UNBOUNDED = " (above 100 %: the chain does not bound the peak)"


def int8_rows(r: dict) -> list[str]:
    """#24: the int8 engine's backbone speed, end to end extraction, calibration."""
    b, e, c = r["backbone"], r["end_to_end"], r["calibration"]
    check = c["check"] or {}
    return [
        f"| #24 | int8 (OpenVINO) backbone, batch {r['batch']}, {r['image_size']} px, "
        f"interleaved | int8 {b['int8']['images_per_s']:.1f}, mixed_bfloat16 "
        f"{b['mixed_bfloat16']['images_per_s']:.1f}, float32 {b['float32']['images_per_s']:.1f},"
        f" tf-slim {b['tf_slim']['images_per_s']:.1f} img/s; {r['share_of_int8_peak']:.0%} of "
        f"a chain of int8 convs at {r['int8_peak_gops']:.0f} GOP/s"
        f"{UNBOUNDED if r['share_of_int8_peak'] > 1 else ''}"
        f" | vs bf16 "
        f"{verdict(r['ratio_int8_vs_bf16'], 1.8, False)}; vs slim "
        f"{verdict(r['ratio_int8_vs_slim'], 3.5, False)} |",
        f"| #24b | end to end extraction, cold store ({e['images']} files: decode + engine + "
        f"store) | int8 {cell(e['images_per_s']['int8'], 'img/s')} vs mixed_bfloat16 "
        f"{cell(e['images_per_s']['mixed_bfloat16'], 'img/s')} | "
        f"{verdict(e['ratio_int8_vs_bf16'], 1.6, False)} |",
        f"| #24c | calibration ({c['images']} images) and check ({c['held_out']} held out) | "
        f"{c['seconds']:.0f} s; IR {c['ir_bytes'] / 1e6:.0f} MB vs backbone "
        f"{c['backbone_bytes'] / 1e6:.0f} MB; centred cosine median "
        f"{check.get('median', float('nan')):.4f}, worst {check.get('worst', float('nan')):.4f} "
        f"| used: {c['precision_used']} (shown) |"]


def export_rows(r: dict) -> list[str]:
    """#25: every export format x quantisation: size, agreement, speed vs the Keras model."""
    speed = r["images_per_s"]
    keras = speed["keras/float32"]["median"]
    rows = []
    for name, e in r["exports"].items():
        if "refused" in e:
            rows.append(f"| #25 | export `{name}` | refused: {e['refused']} | — |")
            continue
        rows.append(
            f"| #25 | export `{name}`: {e['size_bytes'] / 1e6:.0f} MB, {e['export_s']:.0f} s to "
            f"write and check | agreement {e['top1_agreement']:.1%}, max Δp "
            f"{e['max_prob_diff']:.2g} ({e['compared_images']} val images); "
            f"{cell(speed[name], 'img/s')} vs Keras {keras:.1f} | "
            f"**{speed[name]['median'] / keras:.2f}×** Keras (shown) |")
    return rows


def pr(r: dict) -> str:
    """Precision / recall of one finding kind (precision "—" when nothing was flagged)."""
    precision = "—" if r["found"] == 0 else f"{r['precision']:.2f}"
    return f"{precision} / {r['recall']:.2f}"


def doctor_quality_rows(quality: dict, compare: dict) -> list[str]:
    """#27: the quality checks' recall and false flags; doctor vs Datalab and CleanVision."""
    rows = [f"| #27 | quality `{kind}` on damaged copies of {quality['photos']} photos | recall "
            f"{c['recall']:.3f}, false flags {c['false_flags']} ({c['false_flag_rate']:.1%}) | "
            f"(shown) |" for kind, c in quality["checks"].items()]
    doctor, datalab, vision = compare["doctor"], compare["datalab"], compare["cleanvision"]
    rows += [f"| #27b | {kind}, {compare['images']} images, P / R | doctor {pr(doctor[kind])}; "
             f"{other} | (shown) |" for kind, other in (
                 ("label", f"Datalab {pr(datalab['label'])}"),
                 ("near", f"Datalab {pr(datalab['near'])}, CleanVision {pr(vision['near'])}"),
                 ("outlier", f"Datalab {pr(datalab['outlier'])}"),
                 ("quality", f"CleanVision {pr(vision['quality'])}"))]
    return rows


#: figure rows: (result files, builder, what the figure is) in table order
FIGURES = [
    (("train_epochs",), train_rows, "1, 2: `train` cold, warm and without cache"),
    (("extraction",), extraction_rows, "3: extraction from files vs memory"),
    (("backbone",), backbone_rows, "4: extraction forward vs tf-slim"),
    (("memory",), memory_rows, "5: peak RSS of `train`"),
    (("predict",), predict_rows, "6: `predict` one image"),
    (("boundary",), boundary_rows, "#8: phase-2 epoch on the boundary cache"),
    (("store", "memory_slope"), store_rows, "9, 10: the sharded store; memory per image"),
    (("distill",), distill_rows, "11: distilled student vs teacher"),
    (("doctor", "sweep"), doctor_sweep_rows, "12, 13: doctor and sweep"),
    (("checksum",), checksum_rows, "#23: shard verification"),
    (("int8",), int8_rows, "#24: int8 extraction"),
    (("export",), export_rows, "#25: exports"),
    (("quality", "doctor_vs_cleanlab"), doctor_quality_rows,
     "#27: doctor's quality checks and comparison"),
]


def load_average(figure: dict) -> str:
    """The 1-minute load average recorded with a figure (other work slows every figure)."""
    machine = figure.get("machine", {})
    for value in (machine.get("load_average_1_5_15"), figure.get("load_average", {}).get(
            "before") if isinstance(figure.get("load_average"), dict) else None,
            [figure["load_before"]] if "load_before" in figure else None):
        if value:
            return f"{value[0]:.1f}"
    return "?"


def figure_rows() -> list[str]:
    """Every figure's rows with its load; a figure whose results are missing says so."""
    rows = []
    for names, builder, label in FIGURES:
        if not all((OUT / f"{n}.json").exists() for n in names):
            rows.append(f"| {label.split(':')[0]} | {label.split(': ')[1]} | not measured in "
                        f"this run (`{names[0]}.json` missing) | — | — |")
            continue
        figures = [load(n) for n in names]
        load_text = load_average(figures[0])
        rows += [f"{row} {load_text} |" for row in builder(*figures)]
    return rows


def main() -> None:
    backbone = load("backbone")
    m = backbone["machine"]
    lines = [
        "# Benchmark results",
        "",
        "Regenerate with `make bench` (runs `benchmarks/run_all.sh`; every script also has a",
        "`--quick` smoke mode). Figures are medians of repeated runs with min/max; each ratio",
        "compares figures measured in the same run of the script. The last column is the",
        "machine's 1-minute load average when the figure was taken: above 2 (this machine's",
        "cores), other work was running and absolute speeds are low; ratios from interleaved",
        "runs are affected less.",
        "",
        f"Machine: {m['cpu_count']} cores ({m['processor']}), Python {m['python']}, "
        f"TensorFlow {m['tensorflow']}, NumPy {m['numpy']}. Images: {m['data']}. Backbone:",
        "slim ResNet-101 (a stand-in checkpoint: speed does not depend on weight values).",
        "",
        "| # | figure | measured | ratio (target) | load |",
        "|---|---|---|---|---|",
        *figure_rows(),
        "",
        "## Figure 4 in full: every variant, and the share of the machine's peak",
        "",
        f"`auto` chose {backbone['auto']} here ({backbone['auto_why']}).",
        "",
        "| variant | images/s | vs tf-slim |",
        "|---|---|---|",
        *tried(backbone),
        "",
        peak_share(backbone),
        "",
        *(knob_rows() if (OUT / "bf16_knobs.json").exists() else []),
        (HERE / "NOTES.md").read_text() if (HERE / "NOTES.md").exists() else "",
    ]
    (HERE / "RESULTS.md").write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
