"""The tutorial's pictures and console output, from a real run of the offline stand-in.

Runs the steps of ``make demo`` (examples/flowers/demo.sh, stand-in branch: the same
commands and settings) in a scratch folder, then ``resnet-ft report`` on the run, and
writes into ``docs/assets/``:

* ``demo-console.txt`` — every command and what it printed (the tutorial includes it);
* ``report.png`` — the report's first screens (headline, confusion matrix, map of
  the data) in headless Chromium (the project's WebDriver helper, ``tests/support/browser.py``);
* ``curves.png``, ``confusion.png`` — the run's own plots.

Generated rather than drawn so the tutorial shows what the code does today; rerun it
(a few minutes on 2 cores) when the output changes::

    .venv/bin/python docs/make_assets.py
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "docs" / "assets"
#: The stand-in branch of examples/flowers/demo.sh, with its paths under ``demo/``.
STEPS = (
    ("data", "standin", "demo/standin"),
    ("convert", "demo/standin/resnet_v1_101.ckpt", "-o", "demo/resnet_v1_101.keras",
     "--include-top"),
    ("train", "demo/standin/images", "--backbone", "demo/resnet_v1_101.keras", "-o",
     "demo/run", "--overwrite", "--cache-dir", "demo/cache", "--config",
     str(ROOT / "examples/flowers/config.yaml"), "--image-size", "128", "--epochs", "8",
     "--lr", "0.001"),
    ("predict", "demo/run", "demo/standin/images/daisy/daisy_0000.jpg", "--top-k", "3"),
    ("summary", "demo/run"),
    ("report", "demo/run"),
)
#: Height of the screenshot's window: down to the end of the map of the data.
SCREEN_HEIGHT = 1700
#: Widest a picture is kept (CSS pixels of the site's content column, times ~1.5).
MAX_WIDTH = 1100


def run_steps(work: Path) -> str:
    """Run every step in ``work``; the transcript, as a terminal would show it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "120",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    transcript = []
    for step in STEPS:
        shown = " ".join(shlex.quote(arg.replace(str(ROOT) + "/", "")) for arg in step)
        print(f"$ resnet-ft {shown}", flush=True)
        done = subprocess.run([sys.executable, "-m", "resnet_ft", *step], cwd=work, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              check=False)
        print(done.stdout, flush=True)
        if done.returncode != 0:
            raise SystemExit(f"resnet-ft {step[0]} failed (exit {done.returncode})")
        transcript.append(f"$ resnet-ft {shown}\n{done.stdout.rstrip()}\n")
    return "\n".join(transcript)


def screenshot(page: Path, out: Path, profile: Path) -> None:
    """The report's first screens (headline, confusion matrix, map) as a PNG."""
    sys.path.insert(0, str(ROOT / "tests"))
    from support.browser import chromium, console_errors

    driver = chromium(profile, height=SCREEN_HEIGHT)
    try:
        driver.get(page.resolve().as_uri())
        errors = console_errors(driver)
        if errors:
            raise SystemExit(f"the report logged errors: {errors}")
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def save_small(source: Path, out: Path) -> None:
    """``source`` at most MAX_WIDTH wide, as a 256-colour PNG (the site stays small)."""
    image = Image.open(source).convert("RGB")
    if image.width > MAX_WIDTH:
        image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)),
                             Image.LANCZOS)
    image.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


def main(argv: list[str] | None = None) -> None:
    """Run the demo in a scratch folder (or ``--work``) and refresh docs/assets/."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, help="scratch folder to keep (default: temporary)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="resnet-ft-assets-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        transcript = run_steps(work)
        ASSETS.mkdir(parents=True, exist_ok=True)
        (ASSETS / "demo-console.txt").write_text(transcript)
        run = work / "demo" / "run"
        screenshot(run / "report" / "index.html", work / "report.png", work / "chromium")
        save_small(work / "report.png", ASSETS / "report.png")
        for name in ("curves.png", "confusion.png"):
            save_small(run / name, ASSETS / name)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    sizes = {p.name: p.stat().st_size for p in sorted(ASSETS.iterdir())}
    print(f"wrote {ASSETS}: {sizes} ({sum(sizes.values()) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
