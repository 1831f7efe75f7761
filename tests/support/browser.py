"""Headless Chromium through Selenium, for tests that look at the report like a user does.

Chromium and its driver come from Debian (``apt-get install chromium
chromium-driver``; ``make test`` installs them). Selenium is given both paths,
so it never tries to download a browser. Missing binaries fail the test with
the fix; they never skip it.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
#: Flags that work in containers without a GPU, a sandbox or a network.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")
WIDTH = 1360


def chromium(profile: Path, height: int = 1000):
    """A headless Chromium WebDriver with the browser console log enabled."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if shutil.which(p) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: run `make test`, which installs "
                    "Debian's chromium and chromium-driver (apt-get install -y chromium "
                    "chromium-driver)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@contextmanager
def opened(page: Path, profile: Path) -> Iterator:
    """``page`` open in a headless Chromium that is closed when the block ends."""
    driver = chromium(profile)
    try:
        driver.get(page.resolve().as_uri())
        yield driver
    finally:
        driver.quit()


def console_errors(driver) -> list[str]:
    """Messages the page logged at error level (script errors, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]


def full_page_screenshot(driver, path: Path) -> None:
    """The whole page, not just the window: the window is grown to the page's height."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WIDTH, height + 40)
    driver.save_screenshot(str(path))
