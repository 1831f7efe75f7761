#!/usr/bin/env bash
# The flowers workflow end to end: checkpoint -> backbone -> train -> predict -> summary.
#
# With the real files present (demo/resnet_v1_101.ckpt and demo/flower_photos/,
# e.g. from `resnet-ft data flowers demo`), it runs on them. Offline it uses a
# clearly labelled STAND-IN: a random-weight checkpoint in the official slim
# format and a generated image folder. Its predictions mean nothing. With
# PRESET=NAME (or RESNET_FT_MIRROR=BASE, then slim/resnet_v1_101) it converts a
# named preset instead, falling back to the stand-in when it cannot be fetched.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=demo
mkdir -p "$WORK"

STANDIN_ARGS=(--config examples/flowers/config.yaml --image-size 128 --epochs 8 --lr 0.001)
standin() {
  echo "== STAND-IN: $1"
  echo "   Writing a random-weight checkpoint in the official slim format and a generated"
  echo "   image folder. Results below show the pipeline working, NOT flower accuracy."
  echo "   Online, 'resnet-ft data flowers $WORK' fetches the real files."
  [[ -d "$WORK/standin/images" ]] || resnet-ft data standin "$WORK/standin"
  CKPT="$WORK/standin/resnet_v1_101.ckpt"
  DATA="$WORK/standin/images"
  TRAIN_ARGS=("${STANDIN_ARGS[@]}")
}

if [[ ( -e "$WORK/resnet_v1_101.ckpt" || -e "$WORK/resnet_v1_101.ckpt.index" ) \
      && -d "$WORK/flower_photos" ]]; then
  CKPT="$WORK/resnet_v1_101.ckpt"
  DATA="$WORK/flower_photos"
  TRAIN_ARGS=(--config examples/flowers/config.yaml)
  echo "== using the real checkpoint $CKPT and photos $DATA"
elif [[ -n "${PRESET:-}${RESNET_FT_MIRROR:-}" ]]; then
  # A named preset (RESNET_FT_MIRROR=BASE serves BASE/<NAME>/<FILE> on air-gapped sites).
  CKPT="${PRESET:-slim/resnet_v1_101}"
  echo "== preset $CKPT${RESNET_FT_MIRROR:+ from the mirror $RESNET_FT_MIRROR}"
  if [[ -d "$WORK/flower_photos" ]]; then
    DATA="$WORK/flower_photos"
    TRAIN_ARGS=(--config examples/flowers/config.yaml)
  else
    echo "   no photos in $WORK/flower_photos: generated images (STAND-IN data)"
    [[ -d "$WORK/standin/images" ]] || resnet-ft data standin "$WORK/standin"
    DATA="$WORK/standin/images"
    TRAIN_ARGS=("${STANDIN_ARGS[@]}")
  fi
else
  standin "no real resnet_v1_101.ckpt + flower_photos in $WORK/ (offline)."
fi

echo "== resnet-ft convert"
convert() { resnet-ft convert "$CKPT" -o "$WORK/resnet_v1_101.keras" --include-top \
              --cache-dir "$WORK/cache"; }
if ! convert; then
  [[ -n "${PRESET:-}${RESNET_FT_MIRROR:-}" && ! -e "$CKPT" ]] || exit 1
  standin "the preset $CKPT could not be fetched"
  convert
fi
echo "== resnet-ft train"
resnet-ft train "$DATA" --backbone "$WORK/resnet_v1_101.keras" -o "$WORK/run" --overwrite \
  --cache-dir "$WORK/cache" "${TRAIN_ARGS[@]}"
echo "== resnet-ft predict (one image)"
IMAGE=$(find "$DATA" -name '*.jpg' | sort | head -n 1)
resnet-ft predict "$WORK/run" "$IMAGE" --top-k 3
echo "== resnet-ft summary"
resnet-ft summary "$WORK/run"
