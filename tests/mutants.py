"""Do the equivalence tests bite? Plant one plausible bug at a time and see which test fails.

Each mutant is a one-line change to a copy of ``src/`` (never to the working
tree): a row of a checkpoint family's description flipped (where the stride
sits, max-pool padding, conv biases, BN epsilon, input normalisation), a
depth's block counts changed, or the resize rule changed. The equivalence
tests that cover it run against the mutated copy (``PYTHONPATH`` puts it ahead
of the installed package); the first failing test "kills" the mutant. A
mutant that no test kills is a blind spot, and the script exits 1.

    make mutants        # or: .venv/bin/python tests/mutants.py [-k NAME]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCH = "resnet_ft/models/families.py"
PRE = "resnet_ft/data/preprocessing.py"
SLIM = ["tests/equivalence/test_convert_slim.py", "-k", "resnet50 and block4"]
KERAS = ["tests/equivalence/test_convert_keras.py", "-k", "resnet50 and features"]
TORCH = ["tests/equivalence/test_convert_torch.py", "-k", "50-safetensors and match"]


@dataclass(frozen=True)
class Mutant:
    """A name, the file and the exact text to replace, and the tests that should notice."""

    name: str
    path: str
    old: str
    new: str
    tests: list[str]


MUTANTS: list[Mutant] = []


def _add(name: str, path: str, old: str, new: str, tests: list[str]) -> None:
    MUTANTS.append(Mutant(name, path, old, new, tests))


for fam, tests in (("slim", SLIM), ("keras", KERAS), ("torchvision", TORCH)):
    _add(f"{fam}: stride on the other unit", ARCH, f'name="{fam}",', "SWAP_STRIDE_UNIT", tests)
    _add(f"{fam}: stride on the other conv", ARCH, f'name="{fam}",', "SWAP_STRIDE_CONV", tests)
    _add(f"{fam}: other max-pool padding", ARCH, f'name="{fam}",', "SWAP_POOL", tests)
    _add(f"{fam}: conv biases flipped", ARCH, f'name="{fam}",', "SWAP_BIAS", tests)
    _add(f"{fam}: Keras' default BN epsilon 1e-3", ARCH, f'name="{fam}",', "BN_EPSILON", tests)
    _add(f"{fam}: normalisation in BGR order", ARCH, f'name="{fam}",', "BGR_MEAN", tests)
for depth, before, after, tests in (
    (50, "50: (3, 4, 6, 3)", "50: (3, 4, 6, 2)", SLIM),
    (101, "101: (3, 4, 23, 3)", "101: (3, 5, 22, 3)",
     ["tests/equivalence/test_convert_slim.py", "-k", "resnet101 and block4"]),
    (152, "152: (3, 8, 36, 3)", "152: (3, 8, 35, 3)",
     ["tests/equivalence/test_convert_slim.py", "-k", "resnet152"]),
):
    _add(f"ResNet-{depth} block counts {after.split(': ')[1]}", ARCH, before, after, tests)
PREACT = "resnet_ft/models/preact.py"
V2 = "tests/equivalence/test_convert_v2.py"
SLIM_V2 = [V2, "-k", "match and slim"]
BIT = [V2, "-k", "match and safetensors"]
_add("v2: projection from the raw input, not the pre-activation", PREACT,
     "shortcut = self.conv(preact, out_channels", "shortcut = self.conv(x, out_channels", BIT)
_add("v2: subsampled shortcut from the pre-activation", PREACT,
     'name=f"{name}.shortcut")(x)', 'name=f"{name}.shortcut")(preact)', SLIM_V2)
_add("v2: the ReLU after a norm dropped", PREACT,
     "        return layers.ReLU(name=f\"{name}.relu\")(x)\n", "        return x\n", SLIM_V2)
_add("slim v2: zero-padded stem pool", ARCH, 'name="slim_v2", stride_unit="last", '
     'stage_strides=(2, 2, 2, 1), pool_padding="same"', 'name="slim_v2", stride_unit="last", '
     'stage_strides=(2, 2, 2, 1), pool_padding="symmetric"', SLIM_V2)
KERAS_V2 = [V2, "-k", "match and keras"]
_add("keras v2: slim's SAME stem pool", ARCH, 'name="keras_v2", pool_padding="symmetric"',
     'name="keras_v2", pool_padding="same"', KERAS_V2)
_add("keras v2: the caffe BGR flip applied to V2's RGB stem", "resnet_ft/conversion/formats/"
     "keras_h5.py", "bgr = not v2 and (layer", "bgr = (layer", KERAS_V2)
_add("bit: stride on the last unit", ARCH, 'name="bit", stride_unit="first"',
     'name="bit", stride_unit="last"', BIT)
_add("bit: GroupNorm with 16 groups", ARCH, "GROUPS = 32", "GROUPS = 16", BIT)
_add("bit: Google's WS epsilon for timm's layout", ARCH, "ws_epsilon=1e-8,",
     "ws_epsilon=1e-10,", BIT)
_add("resize: crop fraction 0.9", PRE, "CROP_FRACTION = 0.875", "CROP_FRACTION = 0.9",
     ["tests/equivalence/test_preprocessing.py"])
_add("resize: crop and squash swapped", PRE, 'if spec.resize == "squash":',
     'if spec.resize != "squash":', ["tests/equivalence/test_preprocessing.py"])

_SWAPS = {
    "SWAP_STRIDE_UNIT": ("stride_unit", {'"first"': '"last"', '"last"': '"first"'}),
    "SWAP_STRIDE_CONV": ("stride_conv", {'"conv1"': '"conv2"', '"conv2"': '"conv1"'}),
    "SWAP_POOL": ("pool_padding", {'"same"': '"symmetric"', '"symmetric"': '"same"'}),
    "SWAP_BIAS": ("conv_bias", {"True": "False", "False": "True"}),
    "BN_EPSILON": ("bn_epsilon", None),
    "BGR_MEAN": ("normalization", None),
}


def apply(mutant: Mutant, src: Path) -> None:
    """Write the mutant into the copy ``src``; fail loudly if its anchor text is gone."""
    path = src / mutant.path
    text = path.read_text()
    if mutant.new in _SWAPS:
        text = _mutate_family(text, mutant.old, *_SWAPS[mutant.new])
    else:
        if mutant.old not in text:
            raise SystemExit(f"mutant {mutant.name!r}: anchor {mutant.old!r} not found")
        text = text.replace(mutant.old, mutant.new, 1)
    path.write_text(text)


def _mutate_family(text: str, anchor: str, field: str, swap: dict[str, str] | None) -> str:
    """Change one field inside the ``Family(...)`` block that contains ``anchor``."""
    start = text.index(anchor)
    end = text.index("\n)\n", start)
    block = text[start:end]
    match = re.search(rf"(\n    {field}=)(.+?),\n    (?=\w+=)", block, re.S)
    if match is None:
        raise SystemExit(f"no field {field} in block {anchor}")
    value = match.group(2)
    if swap is not None:
        new = swap[value]
    elif field == "bn_epsilon":
        new = "1e-3"
    else:  # normalization: reverse the per-channel means (an RGB/BGR mix-up)
        means = re.search(r"mean=\(([^)]*)\)", value).group(1)
        flipped = ", ".join(reversed([m.strip() for m in means.split(",")]))
        new = value.replace(means, flipped, 1)
    block = block[: match.start(2)] + new + block[match.end(2):]
    return text[:start] + block + text[end:]


def run(mutant: Mutant, work: Path) -> tuple[str | None, float]:
    """The id of the first test that fails against the mutant (None: it survived)."""
    src = work / "src"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    apply(mutant, src)
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header",
         "-rfE", *mutant.tests], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - started
    if done.returncode == 0:
        return None, seconds
    first = re.search(r"^(?:FAILED|ERROR) (\S+)", done.stdout, re.M)
    return (first.group(1) if first else f"(pytest exit {done.returncode})"), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="run only mutants whose name contains this")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if args.k in m.name]
    survivors = 0
    with tempfile.TemporaryDirectory(prefix="resnet-ft-mutants-") as tmp:
        for mutant in chosen:
            killer, seconds = run(mutant, Path(tmp))
            survivors += killer is None
            verdict = f"killed by {killer}" if killer else "SURVIVED"
            print(f"{mutant.name:45s} {verdict} ({seconds:.0f} s)", flush=True)
    print(f"{len(chosen) - survivors}/{len(chosen)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
