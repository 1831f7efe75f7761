#!/usr/bin/env bash
# Regenerate benchmarks/RESULTS.md: every figure, then the report. `make bench` runs this;
# QUICK=1 makes it a smoke run (tiny sizes, one repeat) that writes out/ but not RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=benchmarks/out
mkdir -p "$OUT"
QUICK_FLAG=${QUICK:+--quick}
if [[ ! -f "$OUT/resnet_v1_101.keras" ]]; then
  # Speed does not depend on weight values: a stand-in checkpoint measures the same work.
  resnet-ft data standin "$OUT/standin" --images-per-class 0
  resnet-ft convert "$OUT/standin/resnet_v1_101.ckpt" -o "$OUT/resnet_v1_101.keras"
fi
B="$OUT/resnet_v1_101.keras"
python benchmarks/bench_backbone.py --backbone "$B" $QUICK_FLAG
TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/bench_backbone.py --backbone "$B" \
  --output backbone_no_onednn $QUICK_FLAG
python benchmarks/bench_bf16_knobs.py --backbone "$B" $QUICK_FLAG
python benchmarks/bench_extraction.py --backbone "$B" $QUICK_FLAG
python benchmarks/bench_train_epochs.py --backbone "$B" $QUICK_FLAG
python benchmarks/bench_checksum.py --backbone "$B" $QUICK_FLAG
python benchmarks/bench_boundary.py --backbone "$B" $QUICK_FLAG
python benchmarks/bench_int8.py --backbone "$B" $QUICK_FLAG
python benchmarks/bench_export.py --backbone "$B" $QUICK_FLAG
if [[ ! -f "$OUT/resnet_v1_50.keras" ]]; then
  resnet-ft data standin "$OUT/standin50" --depth 50 --images-per-class 0
  resnet-ft convert "$OUT/standin50/resnet_v1_50.ckpt" -o "$OUT/resnet_v1_50.keras"
fi
python benchmarks/bench_distill.py --backbone "$B" --student "$OUT/resnet_v1_50.keras" $QUICK_FLAG
python benchmarks/bench_doctor.py --backbone "$B" $QUICK_FLAG
python benchmarks/bench_quality.py $QUICK_FLAG
python benchmarks/bench_doctor_vs_cleanlab.py --backbone "$OUT/resnet_v1_50.keras" $QUICK_FLAG
python benchmarks/bench_reject.py --backbone "$OUT/resnet_v1_50.keras" --image-size 160 $QUICK_FLAG
python benchmarks/bench_sweep.py --backbone "$B" $QUICK_FLAG
python benchmarks/bench_report.py --backbone "$B" $QUICK_FLAG
python benchmarks/bench_map.py --backbone "$B" $QUICK_FLAG
# One 3,670-image run takes ~10 minutes here; MEMORY_REPEATS=3 for the median of three.
python benchmarks/bench_memory.py --backbone "$B" --repeats "${MEMORY_REPEATS:-1}" $QUICK_FLAG
python benchmarks/bench_memory_slope.py --backbone "$B" $QUICK_FLAG
# A million simulated images through the store (~8 GB written under benchmarks/out, removed after).
python benchmarks/bench_store.py $QUICK_FLAG
# A small trained run to predict with (1 epoch on 20 images is enough to time predict).
if [[ ! -f "$OUT/predict_run/model.keras" ]]; then
  python -c "import sys; sys.path.insert(0, 'benchmarks'); from common import dataset; \
from pathlib import Path; dataset(Path('$OUT/predict_data'), 20)"
  resnet-ft train "$OUT/predict_data" --backbone "$B" -o "$OUT/predict_run" --epochs 1 \
    --cache-dir "$OUT/cache" --overwrite > /dev/null
fi
IMAGE=$(find "$OUT/predict_data" -name '*.jpg' | sort | head -n 1)
python benchmarks/bench_predict.py --run "$OUT/predict_run" --image "$IMAGE" $QUICK_FLAG
if [[ -z "${QUICK:-}" ]]; then
  python benchmarks/make_results.py
fi
