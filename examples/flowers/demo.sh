#!/usr/bin/env bash
# The flowers workflow end to end: checkpoint -> backbone -> (train -> predict) -> summary.
#
# With the real files present (demo/resnet_v1_101.ckpt and demo/flower_photos/,
# e.g. from `resnet-ft data flowers demo`), it runs on them. Offline it uses a
# clearly labelled STAND-IN: a random-weight checkpoint in the official slim
# format and a generated image folder. Its predictions mean nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=demo
mkdir -p "$WORK"

if [[ -e "$WORK/resnet_v1_101.ckpt" || -e "$WORK/resnet_v1_101.ckpt.index" ]]; then
  CKPT="$WORK/resnet_v1_101.ckpt"
  echo "== using the real checkpoint $CKPT"
else
  echo "== STAND-IN: no real resnet_v1_101.ckpt in $WORK/ (offline); writing a random-weight"
  echo "   checkpoint in the official slim format. Run 'resnet-ft data flowers $WORK' online"
  echo "   to fetch the real checkpoint and photos."
  resnet-ft data standin "$WORK/standin"
  CKPT="$WORK/standin/resnet_v1_101.ckpt"
fi

echo "== resnet-ft convert"
resnet-ft convert "$CKPT" -o "$WORK/resnet_v1_101.keras" --include-top
echo "== resnet-ft summary"
resnet-ft summary "$WORK/resnet_v1_101.keras"
